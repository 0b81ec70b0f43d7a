"""S3: the bucket of encrypted media blobs, and the bucket of its access logs.

Clients upload with a presigned POST and download with a presigned GET, both
made by the HttpApi function, so the bucket is private, TLS-only, encrypted,
and needs CORS only for those two calls from browsers. Objects are ciphertext
whose keys travel inside E2E-encrypted messages; they expire after 30 days like
undelivered messages do.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.media_spec import MEDIA_CORS, MEDIA_EXPIRY_DAYS, OBJECT_PREFIX
from stacks.nag import acknowledge_grant, arn_of

__all__ = ["MediaStorage"]


class MediaStorage(Construct):
    """The media bucket, its log bucket, and the two grants the API needs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cors_origins: Sequence[str],
        removal_policy: RemovalPolicy,
        log_expiry: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        destroy = removal_policy == RemovalPolicy.DESTROY
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only kind S3 log delivery writes
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-logs", expiration=log_expiry)],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="media/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-media",
                    expiration=Duration.days(MEDIA_EXPIRY_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods(m) for m in MEDIA_CORS.methods],
                    allowed_origins=list(cors_origins),
                    allowed_headers=list(MEDIA_CORS.headers),
                    exposed_headers=list(MEDIA_CORS.exposed),
                    max_age=MEDIA_CORS.max_age_s,
                )
            ],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )

    def grant_upload(self, grantee: iam.IGrantable) -> iam.Grant:
        """What signing a presigned POST needs: PutObject under the media prefix."""
        return self._grant_objects(grantee, "s3:PutObject")

    def grant_download(self, grantee: iam.IGrantable) -> iam.Grant:
        """Sign presigned GETs and check an upload arrived: GetObject (and HeadObject)
        under the media prefix, plus ListBucket, without which S3 answers a HEAD of
        a missing object with 403 instead of 404."""
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["s3:ListBucket"], resource_arns=[self.bucket.bucket_arn]
        )
        return self._grant_objects(grantee, "s3:GetObject")

    def grant_delete(self, grantee: iam.IGrantable) -> iam.Grant:
        """Delete objects under the media prefix (an account's uploads, when the
        account is deleted)."""
        return self._grant_objects(grantee, "s3:DeleteObject")

    def _grant_objects(self, grantee: iam.IGrantable, action: str) -> iam.Grant:
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[action],
            resource_arns=[self.bucket.arn_for_objects(f"{OBJECT_PREFIX}*")],
        )
        acknowledge_grant(
            grantee,
            "AwsSolutions-IAM5",
            "Media ids are random and made per upload, so object keys exist only at run "
            f"time; the grant is limited to the {OBJECT_PREFIX} prefix of this one bucket, "
            "and each presigned URL binds one exact key.",
            f"Resource::{arn_of(self.bucket)}/{OBJECT_PREFIX}*",
        )
        return grant
