# Sourced by the other scripts: select the stack and make sure its virtualenv is installed.
# STACK=current (default) uses .venv; STACK=legacy uses .venv-legacy. The pinned requirements go in
# first, then the package itself, editable (`legacy-app` and `python -m legacy_app` work from any
# directory once the virtualenv is activated). Each install is redone only when its files changed.
STACK="${STACK:-current}"
case "$STACK" in
  current) VENV=".venv" ;;
  legacy) VENV=".venv-legacy" ;;
  *) echo "STACK must be current or legacy; got '$STACK'" >&2; exit 2 ;;
esac

ensure_venv() {  # ensure_venv [test]
  local files=(requirements.txt "constraints/$STACK.txt")
  if [[ "${1:-run}" == test ]]; then
    files+=(requirements-test.txt)
    files+=(requirements-otel.txt)  # the trace test runs in CI
    [[ "$STACK" == current ]] && files+=(requirements-fuzz.txt)  # schemathesis 4 needs anyio 4
  fi
  local stamp
  stamp=$(cat "${files[@]}" | sha256sum | cut -d' ' -f1)
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "Creating $VENV ($STACK stack)..." >&2
    python3 -m venv "$VENV"
  fi
  if [[ "$(cat "$VENV/.installed-${1:-run}" 2>/dev/null)" != "$stamp" ]]; then
    echo "Installing ${files[*]} into $VENV..." >&2
    local args=()
    for f in "${files[@]}"; do
      if [[ "$f" == constraints/* ]]; then args+=(-c "$f"); else args+=(-r "$f"); fi
    done
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}"
    echo "$stamp" > "$VENV/.installed-${1:-run}"
  fi
  # The package, editable and without dependencies (the pinned ones are in). Its metadata comes
  # from these files, and the install points at this directory.
  stamp=$( (cat setup.cfg pyproject.toml requirements.txt; pwd) | sha256sum | cut -d' ' -f1)
  if [[ "$(cat "$VENV/.installed-package" 2>/dev/null)" != "$stamp" || ! -x "$VENV/bin/legacy-app" ]]; then
    echo "Installing legacy_app (editable) into $VENV..." >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
    echo "$stamp" > "$VENV/.installed-package"
  fi
}
