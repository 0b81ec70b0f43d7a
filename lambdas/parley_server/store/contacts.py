"""The contacts a user saved, in the users table (store/users.py's key design):

    USER#<uid> / CONTACT#<uid>   saved: true, since

A record is written and removed only by the user's own devices (PUT / DELETE
/v1/contacts/{user_id}); it is what "contacts" means for last seen. Records
without `saved` were written by key fetches before that rule; nothing counts them.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from parley_server.models.errors import DependencyUnavailable, NotFound
from parley_server.store.dynamo import query_pages

__all__ = ["ContactsStore"]

_UNAVAILABLE = "user store unavailable"


def _pk(user_id: str) -> dict[str, str]:
    return {"S": f"USER#{user_id}"}


class ContactsStore:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def save(self, owner: str, contact: str, *, now: float) -> None:
        """`owner` saved `contact`; NotFound unless `contact` has an account. One
        transaction: the record, and a check of the contact's profile."""
        try:
            self._ddb.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self._table,
                            "Key": {"pk": _pk(contact), "sk": {"S": "PROFILE"}},
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                "pk": _pk(owner),
                                "sk": {"S": f"CONTACT#{contact}"},
                                "saved": {"BOOL": True},
                                "since": {"N": str(int(now))},
                            },
                        }
                    },
                ]
            )
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                raise NotFound("no such user", code="unknown_user") from exc
            raise DependencyUnavailable(_UNAVAILABLE) from exc

    def remove(self, owner: str, contact: str) -> None:
        """`owner` no longer counts `contact` as a contact (none saved: no error)."""
        try:
            self._ddb.delete_item(
                TableName=self._table,
                Key={"pk": _pk(owner), "sk": {"S": f"CONTACT#{contact}"}},
            )
        except ClientError as exc:
            raise DependencyUnavailable(_UNAVAILABLE) from exc

    def saved(self, owner: str) -> list[str]:
        """The user ids `owner` saved, in user id order."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :contact)",
            "FilterExpression": "saved = :yes",
            "ProjectionExpression": "sk",
            "ExpressionAttributeValues": {
                ":pk": _pk(owner),
                ":contact": {"S": "CONTACT#"},
                ":yes": {"BOOL": True},
            },
            "ConsistentRead": True,
        }
        return [
            item["sk"]["S"].removeprefix("CONTACT#")
            for page in query_pages(self._ddb, kwargs, _UNAVAILABLE)
            for item in page.get("Items", [])
        ]
