"""Use cases. Plain Python: no boto3, no os.environ."""
