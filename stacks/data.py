"""DynamoDB: every table in parley_server.store.schema.TABLES, built from that spec.

On-demand (traffic is spiky and small), point-in-time recovery, encrypted with
the AWS managed key, TTL on `expires_at` where the spec has one, and exactly
the spec's local/global secondary indexes. The local stack and the test
fixtures build their tables from the same spec, so none of them can drift.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from parley_server.catalogue import Setting
from parley_server.store.schema import TABLES, Attr, TableSpec

__all__ = ["DataTables"]

_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}
_PROJECTIONS = {
    "ALL": dynamodb.ProjectionType.ALL,
    "KEYS_ONLY": dynamodb.ProjectionType.KEYS_ONLY,
}


def _attribute(attr: Attr) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=attr.name, type=_TYPES[attr.type])


class DataTables(Construct):
    """One table per spec; `by_setting` maps each table's Setting to it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: RemovalPolicy,
        deletion_protection: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.by_setting: dict[Setting, dynamodb.Table] = {}
        for spec in TABLES:
            self.by_setting[spec.setting] = self._table(spec, removal_policy, deletion_protection)

    def _table(
        self, spec: TableSpec, removal_policy: RemovalPolicy, deletion_protection: bool
    ) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            spec.id,
            partition_key=_attribute(spec.partition),
            sort_key=_attribute(spec.sort) if spec.sort else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=spec.ttl_attribute,
            deletion_protection=deletion_protection,
            removal_policy=removal_policy,
        )
        for index in spec.indexes:
            if index.kind == "lsi":
                table.add_local_secondary_index(
                    index_name=index.name,
                    sort_key=_attribute(index.sort),
                    projection_type=_PROJECTIONS[index.projection],
                )
            else:
                table.add_global_secondary_index(
                    index_name=index.name,
                    partition_key=_attribute(index.partition or spec.partition),
                    sort_key=_attribute(index.sort),
                    projection_type=_PROJECTIONS[index.projection],
                )
        return table
