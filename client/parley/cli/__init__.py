"""`parley`: the command-line app. One profile per person, so two people can
chat on one machine:

    parley --profile alice signup +15551230001 --code-from-local-sms
    parley --profile alice contacts add +15551230002 Bob
    parley --profile alice send Bob "hi"
    parley --profile alice send-file Bob photo.jpg --caption "the view"
    parley --profile bob inbox            # 📎 photo.jpg (2.1 MB) — parley download 7
    parley --profile bob download 7
    parley --profile alice chat Bob
    parley --profile alice group create Climbing Bob Carol
    parley --profile alice send Climbing "Saturday?"     # a group works like a contact
    parley --profile alice group info Climbing          # members, admins, safety numbers
    parley --profile alice-laptop link                  # a new device: QR code, then history
    parley --profile alice devices link parley-link:1:…  # on the primary: link that device
    parley --profile alice pin set                      # a registration lock (PIN not echoed)

Endpoints come from the local stack's file (~/.parley/local.json, or
PARLEY_LOCAL_FILE) unless `--aws [cdk-outputs.json]` names deploy outputs.
A new profile's secrets are protected by the OS keyring when there is one,
else by a passphrase (asked for, or PARLEY_PASSPHRASE); `--insecure-dev-store`
keeps them unencrypted, for development only. A registration-lock PIN is asked
for without echo (or read from PARLEY_PIN).
"""

from __future__ import annotations

from parley.cli.app import main

__all__ = ["main"]
