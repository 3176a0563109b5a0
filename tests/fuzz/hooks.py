"""schemathesis hooks for edgekit's fuzzing (loaded through SCHEMATHESIS_HOOKS by tests/fuzz/run.mjs).

Login bodies are drawn from the generated ones *or* the demo user's real credentials (EDGEKIT_FUZZ_EMAIL /
EDGEKIT_FUZZ_PASSWORD), so some logins succeed and the stateful phase can follow the document's links from a real
session: login → session / sessions / refresh / logout, refresh → session / logout.
"""
import os

import schemathesis
from hypothesis import strategies as st


@schemathesis.hook
def before_generate_body(context, strategy):
    operation = context.operation
    if operation is None or operation.path != "/auth/login":
        return strategy
    email, password = os.environ.get("EDGEKIT_FUZZ_EMAIL"), os.environ.get("EDGEKIT_FUZZ_PASSWORD")
    if not email or not password:
        return strategy
    return st.one_of(strategy, st.just({"email": email, "password": password}))
