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

    number_help = "the message's number (#N in `history`)"
    reply = commands.add_parser("reply", parents=[common], help="answer a message, quoting it")
    reply.add_argument("message_id", metavar="N", type=int, help=number_help)
    reply.add_argument("text")
    react = commands.add_parser("react", parents=[common], help="react to a message with one emoji")
    react.add_argument("message_id", metavar="N", type=int, help=number_help)
    react.add_argument("emoji", nargs="?", default="", help="one emoji, e.g. 👍")
    react.add_argument("--remove", action="store_true", help="take your reaction back")
    edit = commands.add_parser(
        "edit", parents=[common], help="change a text you sent (for 15 minutes)"
    )
    edit.add_argument("message_id", metavar="N", type=int, help=number_help)
    edit.add_argument("text")
    delete = commands.add_parser(
        "delete",
        parents=[common],
        help="delete a message for everyone (yours for 48 hours; a group admin: any)",
    )
    delete.add_argument("message_id", metavar="N", type=int, help=number_help)
    delete.add_argument(
        "--for-me", action="store_true", help="only from this device (nobody is told)"
    )
    fwd = commands.add_parser(
        "forward", parents=[common], help="forward a message to up to 5 chats"
    )
    fwd.add_argument("message_id", metavar="N", type=int, help=number_help)
    fwd.add_argument("to", nargs="+", metavar="CHAT", help="contacts or groups")
    timer = commands.add_parser(
        "timer",
        parents=[common],
        help="show or set a chat's disappearing messages: off, 24h, 7d or 90d",
    )
    timer.add_argument("name", help="a contact or a group")
    timer.add_argument("setting", nargs="?", choices=("off", "24h", "7d", "90d"))

    chat = commands.add_parser("chat", parents=[common], help="chat interactively")
    chat.add_argument("name", help="a contact or a group")

    commands.add_parser("inbox", parents=[common], help="receive what is waiting, then exit")

    pay = commands.add_parser(
        "pay",
        parents=[common],
        help="UPI payment requests: ask to be paid, answer paid or declined",
        description="Ask a contact or a group to pay you through UPI: the request carries a "
        "upi://pay link (and shows its QR code) that the payer opens in their own UPI app. "
        "Parley moves no money; the payer then marks the request paid or declined.",
    )
    pay_commands = pay.add_subparsers(dest="pay_command", required=True)
    pay_request = pay_commands.add_parser(
        "request", parents=[common], help="ask a contact or a group to pay you"
    )
    pay_request.add_argument("name", help="a contact or a group")
    pay_request.add_argument("amount", help="rupees, e.g. 250 or 1,250.50 (at most 1,00,000)")
    pay_request.add_argument("--note", help="what it is for (at most 50 characters)")
    pay_request.add_argument("--vpa", help="be paid at this UPI ID (default: `parley pay vpa`)")
    pay_request.add_argument(
        "--name", dest="payee", help="the payee name your UPI app shows (default: the saved one)"
    )
    pay_answer = pay_commands.add_parser(
        "answer", parents=[common], help="tell the requester you paid, or declined"
    )
    pay_answer.add_argument("message_id", metavar="N", type=int, help="the request's #N")
    pay_answer.add_argument("status", choices=("paid", "declined"))
    pay_answer.add_argument("--txn", help="the UPI transaction id your UPI app shows")
    pay_show = pay_commands.add_parser(
        "show", parents=[common], help="a request's link, QR code and answers"
    )
    pay_show.add_argument("message_id", metavar="N", type=int, help="the request's #N")
    pay_vpa = pay_commands.add_parser(
        "vpa", parents=[common], help="show or set your UPI ID (kept on this device)"
    )
    pay_vpa.add_argument("vpa", nargs="?", help="your UPI ID (VPA), e.g. asha@okaxis")
    pay_vpa.add_argument("--name", dest="payee", help="the payee name your UPI app shows")
    pay_vpa.add_argument("--clear", action="store_true", help="forget it on this device")

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

    search = commands.add_parser(
        "search",
        parents=[common],
        help="find messages on this device by their text",
        description="Messages (texts, files' names and captions, places, cards) with every "
        "word given, as a word or the start of one; case and accents ignored; newest "
        "first. The history is read from the encrypted store, nothing is indexed.",
    )
    search.add_argument("text", nargs="+", help="the words to look for")
    search.add_argument(
        "--in", dest="conversation", metavar="NAME", help="only in this contact's chat or group"
    )
    search.add_argument("-n", "--limit", type=int, default=20, help="at most this many (20)")
    star = commands.add_parser(
        "star", parents=[common], help="star a message on this device (`parley starred`)"
    )
    star.add_argument("message_id", type=int, help="the number `history` or `search` shows")
    unstar = commands.add_parser("unstar", parents=[common], help="take a message's star away")
    unstar.add_argument("message_id", type=int, help="the number `history` or `search` shows")
    starred = commands.add_parser(
        "starred", parents=[common], help="the messages starred on this device"
    )
    starred.add_argument("name", nargs="?", help="only in this contact's chat or group")

    call = commands.add_parser(
        "call",
        parents=[common],
        help="call a contact (voice; --video for video); answer calls in `parley chat`",
    )
    call.add_argument("name", help="a contact")
    call.add_argument("--video", action="store_true", help="a video call (VP8)")
    call.add_argument(
        "--play", metavar="FILE", help="play this audio file (e.g. a WAV) into the call"
    )
    call.add_argument("--record", metavar="FILE", help="record what the other side says (WAV)")
    call.add_argument(
        "--for",
        dest="seconds",
        type=float,
        metavar="SECONDS",
        help="hang up once connected this long",
    )
    calls = commands.add_parser(
        "calls", parents=[common], help="this device's call log (missed calls marked)"
    )
    calls.add_argument("-n", "--limit", type=int, default=50, help="how many (newest first)")

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
