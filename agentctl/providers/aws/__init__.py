"""AWS provider: one IAM role per agent.

Importing this package is cheap (no boto3): the modules are
``settings`` (agentctl.yaml's ``aws:``), ``vocabulary`` (IAM actions and lint),
``policies`` (pure names, tags and policy documents), ``client`` (boto3
session, clients and error mapping) and ``lifecycle`` (the Provider).
"""

PROVIDER = "aws"
