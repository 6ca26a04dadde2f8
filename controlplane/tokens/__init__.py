"""Credentials the control plane mints for BackendSecurityPolicies: access tokens (AzureCredentials,
GCPCredentials) and an AWS role's temporary keys (AWSCredentials ``oidcExchangeToken``).

The translator says what to mint (``requests``) and reads what was minted (``state``) as one more input, so it
stays pure; ``minting`` speaks to the token endpoints and ``broker`` keeps each policy's token fresh off the
translation path, asking for a new translation whenever a token (or the reason it has none) changes.
"""
