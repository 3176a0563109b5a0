"""schemathesis hooks for edgekit's fuzzing (loaded through SCHEMATHESIS_HOOKS by tests/fuzz/run.mjs).

Login bodies are drawn from the generated ones *or* the demo user's real credentials (EDGEKIT_FUZZ_EMAIL /
EDGEKIT_FUZZ_PASSWORD), so some logins succeed and the stateful phase can follow the document's links from a real
session: login → session / sessions / refresh / logout, refresh → session / logout. Path parameters of the
pages, the rate-limit check and the images are drawn from real names too (KNOWN_PATH_PARAMETERS below).
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


# Path parameters that name something that exists, beside the generated ones (which mostly name nothing and are
# answered 404 before any logic runs): the pages wrangler.toml's RENDER_PAGES defines, the rate-limit policy whose
# entry sets check = true, and the image sources tests/fuzz/run.mjs serves. The query strings stay generated, so the page renderer and the limiter see
# arbitrary `render=` values and the rest of each operation's inputs.
KNOWN_PATH_PARAMETERS = {
    "/p/{page}": [{"page": "home"}, {"page": "product"}],
    "/ratelimit/{policy}/check": [{"policy": "public"}],
    # Sources tests/fuzz/run.mjs's image origin serves, bare and behind a size segment.
    "/images/{path}": [
        {"path": path}
        for path in ("photos/land.jpg", "120/photos/land.jpg", "40x30/photos/logo.png", "photos/broken.png", "photos/page.jpg")
    ],
}


@schemathesis.hook
def before_generate_path_parameters(context, strategy):
    operation = context.operation
    known = KNOWN_PATH_PARAMETERS.get(operation.path) if operation is not None else None
    if not known:
        return strategy
    return st.one_of(strategy, *(st.just(value) for value in known))
