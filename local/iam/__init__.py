"""Each function's synthesized IAM policy, enforced on the local stack and in the
tests as AWS would (policy.py evaluates, template.py reads the template,
requests.py maps boto3 calls to actions and ARNs, enforce.py judges them)."""
