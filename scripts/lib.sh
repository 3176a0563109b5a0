# Shared by the scripts: where cargo installs binaries, and one way to fail that says which step and what to do.
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"

fail() {
  # fail STEP WHAT HOW-TO-FIX
  printf '\nedgekit: step "%s" failed: %s\n  what to do: %s\n' "$1" "$2" "$3" >&2
  exit 1
}

step() {
  printf 'edgekit: %s\n' "$*"
}
