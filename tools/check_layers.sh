#!/usr/bin/env bash
# Fails when an #include goes against the layering in ARCHITECTURE.md:
#   threading/ includes nothing from alloc/, tests/, stress/, tools/;
#   alloc/ includes nothing from tests/, stress/, tools/;
#   inside alloc/, a file includes only headers of its own or a lower rank.
# Usage: check_layers.sh FILE...   (Bazel passes the sources as data)
set -euo pipefail

# Rank of each alloc/ header: lower ranks never include higher ones.
rank() {
  case "$1" in
    config|size_class|os|free_link|sampling|stack_trace|heap_counters|heap_counter_list|checks|cancel|mapping_moves) echo 0 ;;
    fd_writer|scratch|options|error|reentry|foreign_hook|page_map|meta_alloc|limit) echo 1 ;;
    run|arena|large|heap_profile|misuse|heap_env|guarded|guarded_fault) echo 2 ;;
    arena_cache|class_cache|class_runs|owned_arenas|release_budget|incoming_queue|outgoing_batches) echo 3 ;;
    heap|heap_registry|free_path) echo 3 ;;
    release|fork|stats|stats_format|retention_rows|alloc_path|strata|foreign|init|profile|profile_triggers|sampled_alloc) echo 4 ;;
    override|new_failure|flags) echo 5 ;;
    *) echo unlisted ;;  # a new file must take a place above
  esac
}

bad=0
for f in "$@"; do
  dir=$(basename "$(dirname "$f")")
  base=$(basename "$f"); base=${base%.*}
  if [ "$dir" = alloc ] && [ "$(rank "$base")" = unlisted ]; then
    echo "$f: not in check_layers.sh's ranks: give $base a layer (and a row in alloc/README.md)"
    bad=1
    continue
  fi
  while IFS= read -r inc; do
    target=${inc#\"}; target=${target%\"}
    case "$dir" in
      threading)
        case "$target" in threading/*|absl/*) ;; *"/"*) echo "$f: threading/ may not include $target"; bad=1 ;; esac ;;
      alloc)
        case "$target" in
          tests/*|stress/*|tools/*) echo "$f: alloc/ may not include $target"; bad=1 ;;
          alloc/*)
            t=${target#alloc/}; t=${t%.h}
            if [ "$(rank "$t")" = unlisted ]; then
              echo "$f: includes $target, which check_layers.sh does not rank"; bad=1
            elif [ "$(rank "$t")" -gt "$(rank "$base")" ]; then
              echo "$f: $base (rank $(rank "$base")) may not include higher layer $target (rank $(rank "$t"))"; bad=1
            fi ;;
        esac ;;
    esac
  done < <(grep -oE '^#include "[^"]+"' "$f" | sed 's/^#include //')
done
if [ "$bad" -ne 0 ]; then exit 1; fi
echo "layering ok: $# files"
