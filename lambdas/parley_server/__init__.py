"""Parley server: the code of every Lambda function (one asset, one package)."""
