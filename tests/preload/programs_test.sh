#!/usr/bin/env bash
# Everyday programs under strata: sort on a large generated file, sqlite3
# building and querying a generated database, git on a scratch repository.
# Each result is compared with the same program run on glibc's malloc.
source "$(dirname "$0")/lib.sh"
cd "$TMP"

# sort: 400,000 generated lines.
/usr/bin/python3 -c '
import random
r = random.Random(7)
with open("lines.txt", "w") as f:
    for i in range(400000):
        f.write("%08x %s\n" % (r.getrandbits(32), "x" * r.randrange(1, 80)))
'
strata sort -S 64M lines.txt >sorted.strata
sort -S 64M lines.txt >sorted.glibc
cmp sorted.strata sorted.glibc
served "$STATS" 1000000
echo "ok: sort"

# sqlite3: a generated database, an index, aggregate queries.
/usr/bin/python3 -c '
with open("load.sql", "w") as f:
    f.write("BEGIN;\nCREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT);\n")
    for i in range(100000):
        f.write("INSERT INTO t(k, v) VALUES (%d, \"%s\");\n" % (i * 7919 % 1000, "v" * (i % 50)))
    f.write("CREATE INDEX tk ON t(k);\nCOMMIT;\n")
'
QUERY='SELECT count(*), sum(k), sum(length(v)) FROM t; SELECT k, count(*) FROM t GROUP BY k ORDER BY count(*) DESC, k LIMIT 3;'
strata sqlite3 strata.db <load.sql
strata sqlite3 strata.db "$QUERY" >query.strata
sqlite3 glibc.db <load.sql
sqlite3 glibc.db "$QUERY" >query.glibc
cmp query.strata query.glibc
served "$STATS" 100000
echo "ok: sqlite3 ($(head -1 query.strata))"

# git: a scratch repository with history, then log, diff, gc and fsck.
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com
export GIT_CONFIG_NOSYSTEM=1 HOME="$TMP"
rm -rf repo && mkdir repo && cd repo
strata git init -q .
for i in $(seq 1 30); do
  /usr/bin/python3 -c "
import random
r = random.Random($i)
for f in range(10):
    open('file%d.txt' % f, 'a').write(''.join(chr(97 + r.randrange(26)) for _ in range(2000)) + '\n')
"
  strata git add -A
  strata git commit -q -m "commit $i"
done
strata git log --oneline >../log.txt
[ "$(wc -l <../log.txt)" -eq 30 ]
strata git diff HEAD~10 --stat >../diff.txt
strata git gc -q
strata git fsck --strict >../fsck.txt 2>&1
served "$STATS" 100000
cd ..
echo "ok: git (30 commits, gc and fsck clean)"
echo PASS
