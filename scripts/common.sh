# Helpers shared by scripts/bootstrap and scripts/offline/prepare (sourced, not run).
# The sourcing script sets STEP_PREFIX and TOTAL before calling step.
STEP=0
step() { STEP=$((STEP + 1)); printf '[%s %d/%d] %s\n' "$STEP_PREFIX" "$STEP" "$TOTAL" "$*"; }
skip() { printf '    already done, skipping\n'; }
fail() { printf '\n%s: error: %s\n' "$STEP_PREFIX" "$*" >&2; exit 1; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || fail "'$1' is not installed ($2)"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else fail "need root (or sudo) to run: $*"; fi
}

# apt_install PKG… — installs the Debian packages that are not installed yet.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then skip; return 0; fi
  need_cmd apt-get "this bootstrap targets Debian/Ubuntu"
  echo "    installing: ${missing[*]}"
  as_root apt-get update -qq || fail "apt-get update failed (is deb.debian.org reachable?)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || fail "apt-get install ${missing[*]} failed"
}
