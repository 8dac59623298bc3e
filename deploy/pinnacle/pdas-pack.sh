#!/bin/sh
# PDAS pack script: runs on the Pinnacle host (Linux or Solaris), using only sh, find, tar, gzip
# (or zstd) and a SHA-256 tool: GNU, BSD, SVR4 (Solaris) or BusyBox tools under any POSIX shell.
# PDAS calls it over SSH in two steps:
#
#   pdas-pack.sh hash TPS_ROOT PATIENT_REL
#       prints "<sha256> <size> <path>" for every regular file of the patient that is archived
#       (symbolic links and Pinnacle autosave/junk files are left out), paths relative to TPS_ROOT.
#       A patient with a line break in any file or folder name is refused (exit 4): one name per line
#       is the output format, and PDAS never guesses where a name ends.
#   pdas-pack.sh pack TPS_ROOT PATIENT_REL STAGE_DIR OUT_FILE gzip|zstd [LEVEL]
#       writes OUT_FILE: a tar of STAGE_DIR/Institution, STAGE_DIR/PDAS-MANIFEST.json, then the
#       patient's files, compressed; prints "<sha256> <size>" of OUT_FILE. Writes OUT_FILE.partial
#       first and renames it, so a half-written archive never carries the final name.
#
# A site may replace this script with its own (Institution.pack_script) as long as it keeps
# these two commands and their output. Exit status: 0 ok, 2 bad arguments, 3 tool missing, 4 failure.
#
# File names in a patient folder are hostile data (docs/security.md): they reach tar only through a
# list file that tar reads one name per line, never as words of a command line, so a name can be
# neither an option ("--checkpoint-action=exec=...") nor several names ("a /etc/shadow").
set -u
umask 077

die() { echo "pdas-pack: $2" >&2; exit "$1"; }

sha256_tool() {
    if command -v sha256sum >/dev/null 2>&1; then echo "sha256sum -b"
    elif command -v shasum >/dev/null 2>&1; then echo "shasum -a 256 -b"
    elif command -v digest >/dev/null 2>&1; then echo "digest -a sha256"
    elif command -v openssl >/dev/null 2>&1; then echo "openssl dgst -sha256 -r"
    else die 3 "no SHA-256 tool (sha256sum, shasum, digest or openssl) on this host"; fi
}

# Regular files of the patient, no links, no autosave/junk (.auto.plan.Trial.binary.*, *.ErrorLog, *.Transcript).
patient_files() {
    find "$1" -type f ! -name '.auto.plan.Trial.binary.*' ! -name '*.ErrorLog' ! -name '*.Transcript' -print | LC_ALL=C sort
}

digest_of() {
    # The file goes in on standard input, so no tool prints (or escapes) its name; tools print the
    # digest first (digest -a prints only the digest).
    $SHA < "$1" | { read -r sum _rest; printf '%s\n' "$sum"; }
}

size_of() { wc -c < "$1" | tr -d ' '; }

NL='
'

# PATIENT_REL is relative, inside TPS_ROOT, and no option: every listed name starts with it.
check_patient_rel() {
    case "$1" in
        ''|-*|/*|*"$NL"*) die 2 "bad patient path: it must be relative and must not start with '-'" ;;
    esac
    case "/$1/" in
        */../*|*/./*) die 2 "bad patient path: no '.' or '..' components" ;;
    esac
}

# Refuse a patient whose tree holds a name with a line break (the name itself is not printed: it
# may hold anything; its folder is).
refuse_line_breaks() {
    odd=$(find "$1" -name "*$NL*" -print 2>/dev/null | head -n 1)
    [ -z "$odd" ] || die 4 "a file or folder name under $1 contains a line break; rename it on the TPS and archive again"
}

# tar reading the patient's files from LIST (cwd = TPS root), after the stage folder's two files.
tar_from_list() {
    from_stage=$1 from_list=$2 top=${3%%/*} here=$(pwd)
    if tar --help 2>&1 | grep 'BusyBox' >/dev/null; then
        # BusyBox tar takes one -C and (as Debian builds it) no list file: it runs in the stage folder,
        # which gets a link to the patient's top folder for the time of the run, so the listed names
        # (regular files found under the TPS root) resolve to the patient's files and keep their names;
        # the names become arguments one by one ("$@": no splitting, no globbing; each starts with
        # PATIENT_REL, so none is an option). A patient too large for one command line fails here.
        [ ! -e "$from_stage/$top" ] && ln -s "$here/$top" "$from_stage/$top" || return 4
        set --
        while IFS= read -r name; do set -- ${1+"$@"} "$name"; done < "$from_list"  # ${1+"$@"}: old shells and set -u
        (cd "$from_stage" && tar -cf - Institution PDAS-MANIFEST.json ${1+"$@"})
        tar_exit=$?
        rm -f "$from_stage/$top"
        return $tar_exit
    elif tar --version 2>/dev/null | grep 'GNU tar' >/dev/null; then
        # --no-unquote: a backslash in a name is a backslash; --verbatim-files-from (tar 1.29+): a
        # line is never an option (every line starts with PATIENT_REL anyway).
        verbatim=
        tar --help 2>/dev/null | grep -- '--verbatim-files-from' >/dev/null && verbatim=--verbatim-files-from
        tar -cf - -C "$from_stage" Institution PDAS-MANIFEST.json -C "$here" --no-recursion --no-unquote \
            $verbatim -T "$from_list"
    elif tar --version 2>/dev/null | grep 'bsdtar' >/dev/null; then
        tar -cf - -C "$from_stage" Institution PDAS-MANIFEST.json -C "$here" -n -T "$from_list"
    else
        # Solaris and other SVR4 tar: -I reads the include file one name per line; -C applies to
        # the single name after it.
        tar -cf - -C "$from_stage" Institution -C "$from_stage" PDAS-MANIFEST.json -I "$from_list"
    fi
}

cmd=${1:-}
[ -n "$cmd" ] || die 2 "usage: pdas-pack.sh hash|pack ..."
shift

case "$cmd" in
hash)
    [ $# -eq 2 ] || die 2 "usage: pdas-pack.sh hash TPS_ROOT PATIENT_REL"
    check_patient_rel "$2"
    cd "$1" || die 4 "cannot enter $1"
    [ -d "$2" ] || die 4 "no patient directory $2 under $1"
    refuse_line_breaks "$2"
    SHA=$(sha256_tool)
    patient_files "$2" | while IFS= read -r f; do
        printf '%s %s %s\n' "$(digest_of "$f")" "$(size_of "$f")" "$f"
    done
    ;;
pack)
    [ $# -ge 5 ] || die 2 "usage: pdas-pack.sh pack TPS_ROOT PATIENT_REL STAGE_DIR OUT_FILE gzip|zstd [LEVEL]"
    root=$1 patient=$2 stage=$3 out=$4 codec=$5 level=${6:-}
    case "$codec" in
        gzip) compress="gzip -c -${level:-1} -n" ;;
        zstd) command -v zstd >/dev/null 2>&1 || die 3 "zstd is not installed on this host"
              compress="zstd -q -c -${level:-3}" ;;
        *) die 2 "unknown codec $codec (gzip or zstd)" ;;
    esac
    [ -f "$stage/Institution" ] && [ -f "$stage/PDAS-MANIFEST.json" ] || die 4 "$stage lacks Institution or PDAS-MANIFEST.json"
    check_patient_rel "$patient"
    cd "$root" || die 4 "cannot enter $root"
    [ -d "$patient" ] || die 4 "no patient directory $patient under $root"
    refuse_line_breaks "$patient"
    SHA=$(sha256_tool)
    list="$out.files"
    patient_files "$patient" > "$list" || die 4 "cannot list $patient"
    rm -f "$out.partial"
    # Header and manifest first (from the stage folder), then the patient's files (from the TPS root).
    # POSIX sh has no pipefail: tar's own status goes through a file.
    { tar_from_list "$stage" "$list" "$patient"; echo $? > "$out.tar-status"; } \
        | $compress > "$out.partial" || { rm -f "$out.partial" "$list" "$out.tar-status"; die 4 "compression failed"; }
    tar_status=$(cat "$out.tar-status" 2>/dev/null || echo 1)
    rm -f "$list" "$out.tar-status"
    [ "$tar_status" = 0 ] || { rm -f "$out.partial"; die 4 "tar failed (status $tar_status)"; }
    [ -s "$out.partial" ] || die 4 "empty archive"
    mv "$out.partial" "$out" || die 4 "cannot rename $out.partial"
    printf '%s %s\n' "$(digest_of "$out")" "$(size_of "$out")"
    ;;
*)
    die 2 "unknown command $cmd (hash or pack)"
    ;;
esac
