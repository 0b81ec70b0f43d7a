"""The `parley` command's options: global ones (profile, endpoints, store, verbosity),
accepted before or after the command, and one subcommand per thing to do."""

from __future__ import annotations

import argparse

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--profile",
        default=argparse.SUPPRESS,
        help="profile name (one per person/device); default: $PARLEY_PROFILE or 'default'",
    )
    common.add_argument(
        "--aws",
        nargs="?",
        const="cdk-outputs.json",
        default=argparse.SUPPRESS,
        metavar="CDK_OUTPUTS",
        help="use the deployed stack (cdk deploy outputs file, default cdk-outputs.json)",
    )
    common.add_argument(
        "--local-file",
        default=argparse.SUPPRESS,
        help="the local stack's endpoints file (default ~/.parley/local.json)",
    )
    common.add_argument(
        "--insecure-dev-store",
        action="store_true",
        default=argparse.SUPPRESS,
        help="create the profile WITHOUT encryption at rest (development only)",
    )
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog="parley", description="End-to-end encrypted messaging.", parents=[common]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    signup = commands.add_parser(
        "signup",
        parents=[common],
        help="create an account: this device becomes its primary device",
        description="Register this device by phone number and SMS code. It becomes the "
        "account's primary device (link more with `parley link` on them). Signing up a "
        "number that already has an account moves the account here and signs its old "
        "devices out; with a registration lock that needs the PIN.",
    )
    signup.add_argument("phone", help="your phone number, E.164 (+15551234567)")
    code = signup.add_mutually_exclusive_group()
    code.add_argument("--code", help="the 6-digit code (asked for if not given)")
    code.add_argument(
        "--code-from-local-sms",
        action="store_true",
        help="local mode: read the code from the local stack's SMS sink",
    )
    signup.add_argument(
        "--pin",
        action="store_true",
        help="the number has a registration lock: ask for its PIN (not echoed; or set PARLEY_PIN)",
    )

    link = commands.add_parser(
        "link",
        parents=[common],
        help="make this device a companion of your account (shows a QR code)",
        description="Show a QR code and its text form, then wait for your primary device "
        "to link this one (`parley devices link CODE` there). This profile then joins "
        "your account and imports your recent history from the primary.",
    )
    link.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for the primary (default 300, the code's lifetime)",
    )
    link.add_argument(
        "--history-wait",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait for the history after joining (default 120; it is "
        "imported later, e.g. by `parley inbox`, if it comes after)",
    )

    commands.add_parser("whoami", parents=[common], help="this profile's account")

    devices = commands.add_parser(
        "devices",
        parents=[common],
        help="your devices: list, link a new one, unlink one",
        description="Your account's devices: one primary (signed up by phone) and up to "
        "four companions (linked by QR code), each with its key index.",
    )
    device_commands = devices.add_subparsers(dest="devices_command")
    device_commands.add_parser(
        "list", parents=[common], help="list them with role and key index (the default)"
    )
    link_device = device_commands.add_parser(
        "link",
        parents=[common],
        help="on the primary: link the new device showing CODE (`parley link` there)",
    )
    link_device.add_argument(
        "code", metavar="CODE", help="the text under the new device's QR code (parley-link:1:…)"
    )
    unlink = device_commands.add_parser(
        "unlink",
        parents=[common],
        help="unlink a device (on the primary: any companion; on a companion: itself)",
    )
    unlink.add_argument("device_id", metavar="DEVICE_ID")
    sign_out = device_commands.add_parser(
        "remove", parents=[common], help="sign a device out for good"
    )
    sign_out.add_argument("device_id", metavar="DEVICE_ID")

    pin = commands.add_parser(
        "pin",
        parents=[common],
        help="the registration lock PIN (primary only)",
        description="A registration lock: signing up your number on another phone then "
        "needs this PIN as well as the SMS code (unless the account was inactive for 7 "
        "days). The PIN is asked for without echo (or read from PARLEY_PIN).",
    )
    pin_commands = pin.add_subparsers(dest="pin_command", required=True)
    pin_commands.add_parser("set", parents=[common], help="set or change the PIN (6-64 digits)")
    pin_commands.add_parser("remove", parents=[common], help="remove the registration lock")

    account = commands.add_parser("account", parents=[common], help="your account")
    account_commands = account.add_subparsers(dest="account_command", required=True)
    account_commands.add_parser(
        "code", parents=[common], help="text a code for deleting the account (for --code)"
    )
    delete = account_commands.add_parser(
        "delete",
        parents=[common],
        help="delete your account for good, and this profile with it",
    )
    delete.add_argument(
        "--yes", action="store_true", help="do not ask to type the phone number (scripts)"
    )
    delete_code = delete.add_mutually_exclusive_group()
    delete_code.add_argument(
        "--code", help="a code texted before by `parley account code` (else one is sent now)"
    )
    delete_code.add_argument(
        "--code-from-local-sms",
        action="store_true",
        help="local mode: read the code from the local stack's SMS sink",
    )

    contacts = commands.add_parser("contacts", parents=[common], help="manage contacts")
    contact_commands = contacts.add_subparsers(dest="contacts_command", required=True)
    add = contact_commands.add_parser("add", parents=[common], help="add a contact by phone")
    add.add_argument("phone")
    add.add_argument("name")
    contact_commands.add_parser("list", parents=[common], help="list contacts")
    contact_commands.add_parser(
        "requests", parents=[common], help="people who wrote and whom you have not accepted"
    )
    accept = contact_commands.add_parser(
        "accept", parents=[common], help="accept a message request: ticks and typing both ways"
    )
    accept.add_argument("name", help="contact name, phone or user id")
    remove = contact_commands.add_parser(
        "remove", parents=[common], help="stop counting someone as a contact"
    )
    remove.add_argument("name", help="contact name, phone or user id")

    send = commands.add_parser("send", parents=[common], help="send one message")
    send.add_argument("name", help="contact name, phone or user id, or a group")
    send.add_argument("text")

    send_file = commands.add_parser(
        "send-file", parents=[common], help="send a photo, video, audio or document"
    )
    send_file.add_argument("name", help="contact name, phone or user id")
    send_file.add_argument("path", help="the file to send")
    send_file.add_argument("--caption", help="a line of text shown with the file")
    send_file.add_argument("--mime", help="its MIME type (default: guessed from the name)")

    location = commands.add_parser(
        "send-location", parents=[common], help="share a point on the map"
    )
    location.add_argument("name", help="contact name, phone or user id")
    location.add_argument("lat", type=float, help="latitude in degrees (-90..90)")
    location.add_argument("lon", type=float, help="longitude in degrees (-180..180)")
    location.add_argument("--name", dest="place", metavar="PLACE", help="what is there")

    card = commands.add_parser("send-contact", parents=[common], help="share a contact card")
    card.add_argument("name", help="contact name, phone or user id (who gets the card)")
    card.add_argument("card_name", help="the name on the card")
    card.add_argument("phones", nargs="+", metavar="PHONE", help="its phone numbers")

    download = commands.add_parser(
        "download", parents=[common], help="download a received file into the profile"
    )
    download.add_argument("message_id", type=int, help="the number `history` shows")

    chat = commands.add_parser("chat", parents=[common], help="chat interactively")
    chat.add_argument("name", help="a contact or a group")

    commands.add_parser("inbox", parents=[common], help="receive what is waiting, then exit")

    group = commands.add_parser("group", parents=[common], help="group chats")
    group_commands = group.add_subparsers(dest="group_command", required=True)
    create = group_commands.add_parser("create", parents=[common], help="start a group")
    create.add_argument("group_name", metavar="NAME")
    create.add_argument("members", nargs="*", metavar="CONTACT", help="contacts to add")
    for name, about in (
        ("add", "add contacts to a group (admins only)"),
        ("remove", "remove members from a group (admins only)"),
        ("promote", "make members admins (admins only)"),
    ):
        change = group_commands.add_parser(name, parents=[common], help=about)
        change.add_argument("group", metavar="GROUP", help="group name or id")
        change.add_argument("members", nargs="+", metavar="CONTACT")
    vouch = group_commands.add_parser(
        "vouch",
        parents=[common],
        help="sign the members as they are now, so every device trusts them (admins only)",
    )
    vouch.add_argument("group", metavar="GROUP")
    vouch.add_argument("--yes", action="store_true", help="do not ask (scripts)")
    leave = group_commands.add_parser("leave", parents=[common], help="leave a group")
    leave.add_argument("group", metavar="GROUP")
    info = group_commands.add_parser(
        "info", parents=[common], help="members, admins and your safety number with each"
    )
    info.add_argument("group", metavar="GROUP")
    group_commands.add_parser("list", parents=[common], help="your groups")

    history = commands.add_parser("history", parents=[common], help="show a conversation")
    history.add_argument("name", help="a contact or a group")
    history.add_argument("-n", "--limit", type=int, default=50)

    safety = commands.add_parser(
        "safety-number", parents=[common], help="show the safety number with a contact"
    )
    safety.add_argument("name")
    safety.add_argument(
        "--mark-verified",
        action="store_true",
        help="you compared the numbers and they match (clears a key-change warning)",
    )
    return parser
