"""The web dashboard and playground at /dashboard/ (docs/dashboard.md).

Pages are HTML shells with plain JavaScript (no build step, no third-party library);
their data comes from /dashboard/api/, which serves the API's own views with the
session's sign-in instead of a bearer header, so no figure is computed a second way.
"""
