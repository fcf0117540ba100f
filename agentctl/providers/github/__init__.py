"""GitHub provider: a GitHub App per agent, scoped installation tokens.

Importing this package is cheap (no githubkit): the modules are
``settings`` (agentctl.yaml's ``github:``), ``scopes`` (the scope table and
lint), ``client`` (HTTP, retries and errors), ``manifest`` (the App manifest
flow) and ``lifecycle`` (the Provider).
"""

PROVIDER = "github"
