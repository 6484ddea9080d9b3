# Shared by the pipelines/ scripts (sourced, not run): finds or builds the plugin and checks
# that the elements a script needs are there, with one clear line when they are not.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data=${SWARMPOSE_DATA:-$repo/../shared/data}

# The plugin: $SWARMPOSE_PLUGIN_DIR, else target/release of this checkout (built on first
# use; run `bash .ci/setup` first on a fresh machine).
plugin_dir=${SWARMPOSE_PLUGIN_DIR:-$repo/target/release}
if [ ! -f "$plugin_dir/libgstswarmpose.so" ]; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
  echo "${0##*/}: building the plugin (cargo build --release --locked)..." >&2
  (cd "$repo" && cargo build --release --locked >&2) || {
    echo "${0##*/}: cannot build the plugin (bash .ci/setup installs what it needs)" >&2
    exit 1
  }
fi
export GST_PLUGIN_PATH="$plugin_dir${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"

# require_elements NAME...: exits with a message naming the first missing element.
require_elements() {
  local element
  for element in "$@"; do
    gst-inspect-1.0 "$element" >/dev/null 2>&1 || {
      echo "${0##*/}: GStreamer element '$element' not found (swarmpose elements: see the status table in README.md; others: bash .ci/setup)" >&2
      exit 1
    }
  done
}

# Element names of a gst-launch chain ("a p=1 ! b ! c" -> "a b c"), for require_elements.
chain_elements() {
  tr '!' '\n' <<<"$1" | awk 'NF { print $1 }' | grep -v '/' || true
}
