"""The CDK app's constructs: one module per capability, composed by parley_stack."""
