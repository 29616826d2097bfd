#!/bin/sh
# The Unix half of tests/windows/openssl_standin.py: run the host's openssl on the files that the
# Windows half prepared in DIR, then write its exit status (last, atomically: the other side waits for it).
dir=$1
shift
# The shell's own errors (a redirection that failed) go to "shell", apart from OpenSSL's.
{ /usr/bin/openssl "$@" < "$dir/in" > "$dir/out" 2> "$dir/err"; } 2> "$dir/shell"
code=$?
echo "$code" > "$dir/status.tmp" && mv "$dir/status.tmp" "$dir/status"
