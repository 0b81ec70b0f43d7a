"""Data access: the only package that imports boto3 or talks to AWS."""
