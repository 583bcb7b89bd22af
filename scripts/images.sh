#!/usr/bin/env bash
# Builds one image per service: FROM scratch, one static musl binary, a
# non-root user, OCI labels; each exported as an OCI archive that
# `kind load image-archive` and `docker load`/`podman load` take as it is.
#
#   scripts/images.sh [service ...]      (default: all six)
#
# Output: .sluice/images/sluice-<service>.tar (OCI archive), tagged
# sluice-<service>:<version>. Builder: buildah (daemonless; here with the vfs
# driver and chroot isolation, which need no privileges beyond root), else
# docker or podman from the same rootfs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# The images are for Linux on this machine's CPU (x86_64 or aarch64); the
# binaries are built here, so this needs Linux with the musl toolchain
# (`make deps` installs it on Debian and Ubuntu).
if [ "$(uname -s)" != Linux ]; then
  echo "images: the images are built on Linux (on macOS, run make images in a Linux VM or container)" >&2
  exit 1
fi
arch="$(uname -m)"
case "$arch" in arm64) arch=aarch64 ;; esac
target="$arch-unknown-linux-musl"
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  echo "images: the Rust target $target is missing: rustup target add $target" >&2
  exit 1
fi
if ! command -v musl-gcc >/dev/null; then
  echo "images: musl-gcc is missing: apt-get install musl-tools" >&2
  exit 1
fi
out="${SLUICE_IMAGES_DIR:-$root/.sluice/images}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
revision="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then revision="$revision-dirty"; fi
tag="${SLUICE_IMAGE_TAG:-$version}"
# Where the source lives: SLUICE_IMAGE_SOURCE, else this clone's origin.
source="${SLUICE_IMAGE_SOURCE:-$(git remote get-url origin 2>/dev/null || echo local)}"
all=(gateway processor transformer notifier file-ingest orchestrator)
services=("$@")
[ "${#services[@]}" -gt 0 ] || services=("${all[@]}")
say() { printf 'images: %s\n' "$*" >&2; }

packages=()
for s in "${services[@]}"; do
  case " ${all[*]} " in *" $s "*) packages+=(-p "sluice-$s") ;; *) say "unknown service $s (one of: ${all[*]})"; exit 2 ;; esac
done

say "building ${services[*]} for $target (profile image, revision $revision)"
cc_var="CC_${target//-/_}"
env SLUICE_REVISION="$revision" "$cc_var=musl-gcc" \
  cargo build --profile image --target "$target" "${packages[@]}"

if command -v buildah >/dev/null; then
  builder=buildah
elif command -v docker >/dev/null; then
  builder=docker
elif command -v podman >/dev/null; then
  builder=podman
else
  say "no image builder: install buildah (apt-get install buildah), docker or podman"
  exit 1
fi
mkdir -p "$out"

for s in "${services[@]}"; do
  bin="target/$target/image/sluice-$s"
  image="sluice-$s:$tag"
  labels=(
    "org.opencontainers.image.title=sluice-$s"
    "org.opencontainers.image.description=sluice $s service"
    "org.opencontainers.image.version=$version"
    "org.opencontainers.image.revision=$revision"
    "org.opencontainers.image.source=$source"
    "org.opencontainers.image.licenses=Apache-2.0"
  )
  ctx="$(mktemp -d)"
  # The image gets the binary without its symbol table (target/ keeps it,
  # for reading a backtrace's addresses).
  strip --strip-all -o "$ctx/sluice-$s" "$bin"
  chmod 0755 "$ctx/sluice-$s"
  # A scratch image has no /etc/passwd: the user is numeric, and /tmp is
  # where the chart mounts a writable volume.
  mkdir -m 1777 "$ctx/tmp"
  case "$builder" in
    buildah)
      export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
      c="$(buildah from scratch)"
      buildah copy --chown 0:0 "$c" "$ctx/sluice-$s" /sluice >/dev/null
      buildah copy "$c" "$ctx/tmp" /tmp >/dev/null
      label_flags=()
      for l in "${labels[@]}"; do label_flags+=(--label "$l"); done
      buildah config --user 65532:65532 --entrypoint '["/sluice"]' --cmd '' \
        --port 8080 --workingdir / "${label_flags[@]}" "$c"
      buildah commit --quiet --rm "$c" "$image" >/dev/null
      rm -f "$out/sluice-$s.tar"
      # The archive names the image by its full reference: containerd (kind
      # load image-archive, ctr import) and docker load then store it under
      # the name a pod's `sluice-<service>:<tag>` normalises to.
      buildah push --quiet "$image" "oci-archive:$out/sluice-$s.tar:docker.io/library/$image"
      ;;
    docker | podman)
      {
        echo "FROM scratch"
        echo "COPY sluice-$s /sluice"
        echo "COPY tmp /tmp"
        for l in "${labels[@]}"; do echo "LABEL ${l%%=*}=\"${l#*=}\""; done
        echo "USER 65532:65532"
        echo "EXPOSE 8080"
        echo 'ENTRYPOINT ["/sluice"]'
      } >"$ctx/Containerfile"
      "$builder" build -q -t "$image" -f "$ctx/Containerfile" "$ctx" >/dev/null
      "$builder" save -o "$out/sluice-$s.tar" "$image"
      ;;
  esac
  rm -rf "$ctx"
  say "$image → $out/sluice-$s.tar ($(du -h "$out/sluice-$s.tar" | cut -f1))"
done
