"""`python -m local.iam` (make iam-policies): write local/iam/policies.json anew."""

from local.iam.snapshot import write
from local.iam.template import SNAPSHOT

write()
print(f"wrote {SNAPSHOT.relative_to(SNAPSHOT.parents[2])}")
