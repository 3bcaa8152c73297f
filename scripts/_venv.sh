# Sourced by the other scripts: select the stack and make sure its virtualenv is installed.
# STACK=current (default) uses .venv; STACK=legacy uses .venv-legacy. Installs are redone only when
# a requirements or constraints file changed.
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
}
