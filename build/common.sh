# Sourced by the build, release and reproducibility scripts, Linux and Windows alike: the steps they
# share. Each caller defines say() first and runs from the repository root.

# A fixed build environment; sets in_git (1 when the root is a git work tree's top) and exports
# SOURCE_DATE_EPOCH (default: committer time of HEAD).
build_environment() {
    export PYTHONHASHSEED=0
    export LC_ALL=C.UTF-8
    export TZ=UTC
    export PYTHONDONTWRITEBYTECODE=1
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    umask 022
    in_git=0
    if git rev-parse --is-inside-work-tree > /dev/null 2>&1 \
            && [ "$(git rev-parse --show-toplevel)" = "$(pwd)" ]; then
        in_git=1
    fi
    if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
        [ "$in_git" = 1 ] || { say "not a git work tree: set SOURCE_DATE_EPOCH and CSSADMIN_COMMIT"; exit 2; }
        SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
    fi
    export SOURCE_DATE_EPOCH
}

# The project's sources (tracked and new, not ignored, files; outside git every file) copied into
# DEST, which is made anew: an in-tree build would leave setuptools' build/lib behind and pick up
# stray files. pyproject.toml names README.md as the long description; an empty one stands in.
snapshot_sources() {
    local dest=$1
    rm -rf "$dest"
    mkdir -p "$dest"
    if [ "$in_git" = 1 ]; then
        git ls-files -z --cached --others --exclude-standard -- pyproject.toml README.md 'cssadmin/*'
    else
        find pyproject.toml README.md cssadmin -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 2>/dev/null
    fi | LC_ALL=C sort -z \
        | while IFS= read -r -d '' file; do [ -e "$file" ] && printf '%s\0' "$file"; done \
        | tar --null -T - -cf - | tar -xf - -C "$dest"
    if [ ! -f "$dest/README.md" ]; then
        say "warning: README.md is missing; building with an empty one"
        : > "$dest/README.md"
    fi
}

# The work tree as it is (tracked and new, not ignored, files; on a fresh clone, the commit) copied
# into DEST, for builds that must not see files edited while they run; exports the SOURCE_DATE_EPOCH
# and the commit of HEAD ("-dirty" if anything differs) that those builds are to record.
copy_work_tree() {
    local dest=$1 commit
    git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' file; do [ -f "$file" ] && printf '%s\0' "$file"; done \
        | tar --null -T - -cf - | tar -xf - -C "$dest"
    export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
    commit=$(git rev-parse HEAD)
    [ -z "$(git status --porcelain)" ] || commit="$commit-dirty"
    export CSSADMIN_COMMIT=${CSSADMIN_COMMIT:-$commit}
}

# The commit --version shows: CSSADMIN_COMMIT, else HEAD with "-dirty" when any of PATHS differ from it.
build_commit() {
    if [ -n "${CSSADMIN_COMMIT:-}" ]; then
        echo "$CSSADMIN_COMMIT"
        return
    fi
    [ "$in_git" = 1 ] || { say "not a git work tree: set CSSADMIN_COMMIT"; exit 2; }
    local commit
    commit=$(git rev-parse HEAD)
    if [ -n "$(git status --porcelain -- "$@")" ]; then
        commit="$commit-dirty"
    fi
    echo "$commit"
}

# FOLDER/SHA256SUMS over the files directly in FOLDER, then checked.
write_sha256sums() {
    local folder=$1
    (cd "$folder" && LC_ALL=C find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort \
        | xargs -d '\n' sha256sum > SHA256SUMS)
    chmod 0644 "$folder/SHA256SUMS"
    (cd "$folder" && sha256sum --quiet -c SHA256SUMS) || { say "SHA256SUMS does not verify"; exit 1; }
}

# The verdict on two builds of one commit: exit 0 when FIRST and SECOND are byte-identical; else
# name the archive members that differ (from MEMBERS1, MEMBERS2) and the first differing bytes.
compare_builds() {
    local what=$1 first=$2 second=$3 members1=$4 members2=$5 kept=$6 a b
    a=$(sha256sum "$first" | cut -d' ' -f1)
    b=$(sha256sum "$second" | cut -d' ' -f1)
    echo "build 1: $a  ($(stat -c %s "$first") bytes)"
    echo "build 2: $b  ($(stat -c %s "$second") bytes)"
    if [ "$a" = "$b" ]; then
        echo "PASS: the two $what are byte-identical (sha256 $a)"
        exit 0
    fi
    echo "FAIL: the two $what differ"
    echo "archive members that differ:"
    diff "$members1" "$members2" | sed -n 's/^[<>] /  /p' || true
    echo "first differing byte ranges (offset, byte in build 1, byte in build 2):"
    cmp -l "$first" "$second" | head -20 || true
    echo "copies kept in $kept"
    exit 1
}
