# Sourced by the other scripts: select the stack and make sure its virtualenv is installed.
# STACK=current (default) uses .venvs/current; STACK=legacy uses .venvs/legacy (`.venv` is left to uv
# and to the user: `uv sync` makes it, from pyproject.toml, with the slim install). The pinned requirements go in
# first, then the package itself, editable (`legacy-app` and `python -m legacy_app` work from any
# directory once the virtualenv is activated). Each install is redone only when its files changed.
STACK="${STACK:-current}"
case "$STACK" in
  current) VENV=".venvs/current" ;;
  legacy) VENV=".venvs/legacy" ;;
  *) echo "STACK must be current or legacy; got '$STACK'" >&2; exit 2 ;;
esac

ensure_venv() {  # ensure_venv [test]
  # The package, editable, with its `service` extra (requirements.txt), pinned by the stack's
  # constraints; for tests also the `otel` extra (the trace test runs in CI) and the test tools.
  local extras=service files=(pyproject.toml requirements.txt "constraints/$STACK.txt")
  if [[ "${1:-run}" == test ]]; then
    extras=service,otel,fix
    files+=(requirements-otel.txt requirements-fix.txt requirements-test.txt)
    [[ "$STACK" == current ]] && files+=(requirements-fuzz.txt)  # schemathesis 4 needs anyio 4
  fi
  local stamp
  stamp=$( (cat "${files[@]}"; pwd) | sha256sum | cut -d' ' -f1)
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "Creating $VENV ($STACK stack)..." >&2
    python3 -m venv "$VENV"
  fi
  if [[ "$(cat "$VENV/.installed-${1:-run}" 2>/dev/null)" != "$stamp" || ! -x "$VENV/bin/legacy-app" ]]; then
    echo "Installing legacy_app[$extras] (editable), pinned by constraints/$STACK.txt, into $VENV..." >&2
    local args=(-e ".[$extras]")
    for f in "${files[@]:2}"; do
      if [[ "$f" == constraints/* ]]; then args+=(-c "$f"); elif [[ "$f" == requirements-test.txt || "$f" == requirements-fuzz.txt ]]; then args+=(-r "$f"); fi
    done
    local status=0
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}" || status=$?
    ((status == 0)) || { echo "installing into $VENV failed (pip exit $status)" >&2; return "$status"; }
    echo "$stamp" > "$VENV/.installed-${1:-run}"
  fi
}
