"""CDK bundling of the Lambda asset on this machine (stacks/asset.py builds it): never
with Docker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from stacks.asset import (
    BYTECODE_PYTHON,
    LAMBDA_PLATFORMS,
    LAMBDA_PYTHON,
    RUNTIME_PROVIDED,
    build_asset,
    bytecode_python,
)

__all__ = [
    "BYTECODE_PYTHON",
    "LAMBDA_PLATFORMS",
    "LAMBDA_PYTHON",
    "RUNTIME_PROVIDED",
    "PipLocalBundling",
    "build_asset",
    "bytecode_python",
    "lambda_code",
]


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """CDK local bundling: builds the asset with pip, or fails the synth.

    It never answers False, because False would make the CDK fall back to
    bundling in a Docker container, and the machines that build Parley have none.
    """

    def __init__(self, source: Path) -> None:
        self._source = source

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: Any) -> bool:
        build_asset(
            Path(output_dir), source=self._source, requirements=self._source / "requirements.txt"
        )
        return True


def lambda_code(source: Path) -> lambda_.Code:
    """The one asset every function runs: `source` is the lambdas/ directory.

    Its hash is taken from the source (package + requirements.txt), so an
    unchanged source reuses the bundle already in cdk.out instead of running pip.
    """
    return lambda_.Code.from_asset(
        str(source),
        asset_hash_type=AssetHashType.SOURCE,
        exclude=["**/__pycache__", "**/*.pyc", "**/.mypy_cache", "**/.pytest_cache"],
        bundling=BundlingOptions(
            # Required by the API, never pulled: local bundling always succeeds or raises.
            image=DockerImage.from_registry("parley-bundles-locally-without-docker"),
            local=PipLocalBundling(source),
        ),
    )
