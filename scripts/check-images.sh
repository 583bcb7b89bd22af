#!/usr/bin/env bash
# Checks the OCI archives scripts/images.sh wrote, as a cluster would see them:
# the config (non-root numeric user, the binary as entrypoint, OCI labels),
# the contents (one static binary, no shell), the size (the archive, i.e. the
# compressed layers a registry stores and kind loads, under 30 MiB), and
# that the binary runs: `--version` from the unpacked rootfs answers with the
# service's name, version and revision.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${SLUICE_IMAGES_DIR:-$root/.sluice/images}"
python3 - "$dir" "$@" <<'EOF'
import io, json, os, subprocess, sys, tarfile, tempfile

directory, wanted = sys.argv[1], sys.argv[2:]
services = wanted or ["gateway", "processor", "transformer", "notifier", "file-ingest", "orchestrator"]
MAX = 30 * 1024 * 1024
failures = []

def blob(archive, digest):
    algo, hexd = digest.split(":", 1)
    return archive.extractfile(f"blobs/{algo}/{hexd}").read()

for service in services:
    path = os.path.join(directory, f"sluice-{service}.tar")
    def fail(why):
        failures.append(f"sluice-{service}: {why}")
    if not os.path.exists(path):
        fail(f"no archive at {path}")
        continue
    size = os.path.getsize(path)
    with tarfile.open(path) as archive:
        index = json.loads(archive.extractfile("index.json").read())
        ref = index["manifests"][0].get("annotations", {}).get("org.opencontainers.image.ref.name", "")
        if not ref.startswith(f"docker.io/library/sluice-{service}:"):
            fail(f"the archive names the image {ref!r}, not docker.io/library/sluice-{service}:<tag>")
        manifest = json.loads(blob(archive, index["manifests"][0]["digest"]))
        config = json.loads(blob(archive, manifest["config"]["digest"]))
        cfg = config.get("config", {})
        if cfg.get("User") != "65532:65532":
            fail(f"user is {cfg.get('User')!r}, not the non-root 65532:65532")
        if cfg.get("Entrypoint") != ["/sluice"]:
            fail(f"entrypoint is {cfg.get('Entrypoint')!r}")
        labels = cfg.get("Labels") or {}
        for key in ("source", "version", "revision", "title"):
            if not labels.get(f"org.opencontainers.image.{key}"):
                fail(f"label org.opencontainers.image.{key} missing")
        with tempfile.TemporaryDirectory() as rootfs:
            names = []
            for layer in manifest["layers"]:
                with tarfile.open(fileobj=io.BytesIO(blob(archive, layer["digest"]))) as t:
                    names += [m.name.lstrip("./") for m in t.getmembers() if m.isfile()]
                    t.extractall(rootfs, filter="data")
            if names != ["sluice"]:
                fail(f"holds {names}, not the one binary")
            binary = os.path.join(rootfs, "sluice")
            unpacked = os.path.getsize(binary) if os.path.exists(binary) else 0
            with open(binary, "rb") as f:
                elf = f.read()
            # A dynamically linked ELF names its loader (PT_INTERP): a static one does not.
            if b"ld-linux" in elf[:4096] or b"/lib/ld-musl" in elf[:4096]:
                fail("binary is dynamically linked")
            run = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30,
                                 env={}, cwd=rootfs)
            line = run.stdout.strip()
            version = labels.get("org.opencontainers.image.version", "?")
            revision = labels.get("org.opencontainers.image.revision", "?")
            if run.returncode != 0 or line != f"sluice-{service} {version} ({revision})":
                fail(f"--version answered {line!r} (status {run.returncode}, {run.stderr.strip()!r})")
    if size > MAX:
        fail(f"{size / 2**20:.1f} MiB, over 30 MiB")
    print(f"check-images: sluice-{service}: {size / 2**20:.1f} MiB "
          f"({unpacked / 2**20:.1f} MiB unpacked), user {cfg.get('User')}, --version {line!r}")

if failures:
    print("\n".join(failures))
    sys.exit(1)
EOF
