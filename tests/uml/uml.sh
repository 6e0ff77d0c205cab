# shellcheck shell=bash
# User-Mode Linux helpers shared by tests/uml/run and interop/run (source this file).
#
# Debian's user-mode-linux package is a 6.1 kernel that runs as an ordinary process and has what
# the host kernel of our CI machines lacks: esp6, xfrm_user, mip6, veth. The guest sees the host's
# /usr and /etc copy-on-write (so it runs the host's iproute2, python3, strongSwan unchanged), the
# host's / read-only at /host, and one read-write job directory at /job. A boot takes ~2.5 s.

UML_LIB_DIR=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
UML_KERNEL=/usr/bin/linux.uml
UML_MODULES=/usr/lib/uml/modules

# uml_missing_packages CMD=PACKAGE...: prints the Debian packages whose command or file is absent.
uml_missing_packages() {
  local spec what pkg missing=()
  for spec in "$@"; do
    what=${spec%%=*}
    pkg=${spec#*=}
    if [[ $what == /* ]]; then
      [[ -e $what ]] && continue
    else
      command -v "$what" >/dev/null 2>&1 && continue
      # root's PATH may lack /usr/sbin on some systems; the guest has it
      [[ -x /usr/sbin/$what || -x /sbin/$what ]] && continue
    fi
    [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
  done
  echo "${missing[*]}"
}

# The packages every UML run needs on the host (the guest uses the host's binaries).
UML_BASE_NEEDS=(
  "$UML_KERNEL=user-mode-linux" /bin/busybox=busybox cpio=cpio gzip=gzip timeout=coreutils
  ip=iproute2 ping=iputils-ping /usr/bin/python3=python3 modprobe=kmod
)

# uml_check: root and packages. Prints what is missing and returns 1 when anything is.
uml_check() {
  local ok=0 missing
  if [[ $(id -u) != 0 ]]; then
    echo "not root: run it as root (sudo $0): the guest reaches the host's files through hostfs" \
      "with the rights of the user who started it" >&2
    ok=1
  fi
  missing=$(uml_missing_packages "${UML_BASE_NEEDS[@]}" "$@")
  if [[ -n $missing ]]; then
    echo "missing Debian packages: $missing" >&2
    echo "install them with: apt-get install -y $missing" >&2
    ok=1
  fi
  if [[ -x $UML_KERNEL ]] && ! ls -d "$UML_MODULES"/*/kernel >/dev/null 2>&1; then
    echo "user-mode-linux is installed but $UML_MODULES/<version>/kernel is missing" >&2
    ok=1
  fi
  return $ok
}

uml_kver() { basename "$(ls -d "$UML_MODULES"/*/ | head -1)"; }

# uml_build_initramfs CACHE_DIR: builds CACHE_DIR/initramfs.gz unless it is up to date.
# The key covers the init script, this file, the UML kernel and busybox, so a package upgrade or an
# edit rebuilds it.
uml_build_initramfs() {
  local cache=$1 kver key tmp m dep lib a
  kver=$(uml_kver)
  key=$( (cat "$UML_LIB_DIR/init" "${BASH_SOURCE[0]}"; echo "$kver"; sha256sum "$UML_KERNEL" /bin/busybox) |
    sha256sum | cut -d' ' -f1)
  mkdir -p "$cache"
  if [[ -f $cache/initramfs.gz && $(cat "$cache/initramfs.key" 2>/dev/null) == "$key" ]]; then
    return 0
  fi
  tmp=$(mktemp -d)
  mkdir -p "$tmp"/{bin,mods,proc,sys,dev,newroot,etc}
  cp /bin/busybox "$tmp/bin/"
  for a in sh mount umount mkdir insmod ln cat echo sed cp chmod switch_root poweroff; do
    ln -s busybox "$tmp/bin/$a"
  done
  # busybox may be dynamically linked (Debian's `busybox` is; `busybox-static` is not)
  for lib in $(ldd /bin/busybox 2>/dev/null | grep -o '/[^ ]*'); do
    mkdir -p "$tmp$(dirname "$lib")"
    cp -L "$lib" "$tmp$lib"
  done
  # overlayfs is a module in Debian's UML; modules.dep lists a module's dependencies (all of them,
  # to be loaded last first)
  : >"$tmp/etc/modules.boot"
  for m in overlay; do
    dep=$(grep -E "/$m\.ko(\.[a-z]+)?:" "$UML_MODULES/$kver/modules.dep") || {
      echo "uml: module $m not found in $UML_MODULES/$kver/modules.dep" >&2
      rm -rf "$tmp"
      return 1
    }
    # shellcheck disable=SC2086
    set -- ${dep#*:}
    local order=()
    for a in "$@"; do order=("$a" "${order[@]}"); done
    order+=("${dep%%:*}")
    for a in "${order[@]}"; do
      cp "$UML_MODULES/$kver/$a" "$tmp/mods/"
      basename "$a" >>"$tmp/etc/modules.boot"
    done
  done
  echo "$kver" >"$tmp/etc/kver"
  cp "$UML_LIB_DIR/init" "$tmp/init"
  chmod +x "$tmp/init"
  (cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$cache/initramfs.gz.new"
  rm -rf "$tmp"
  mv "$cache/initramfs.gz.new" "$cache/initramfs.gz"
  echo "$key" >"$cache/initramfs.key"
  echo "uml: built $cache/initramfs.gz for UML $kver" >&2
}

# uml_boot CACHE_DIR JOB_DIR TIMEOUT_SECONDS: boots UML, runs JOB_DIR/cmd (bash) inside with
# JOB_DIR at /job; the guest writes JOB_DIR/out and JOB_DIR/rc. The console goes to
# JOB_DIR/console.log. Returns the guest's exit code, or 124 on timeout, or 125 when the guest
# never wrote an exit code.
uml_boot() {
  local cache=$1 job=$2 limit=$3 tmpd rc
  # UML maps its memory from a file in TMPDIR, which must allow exec
  tmpd=/dev/shm
  if ! [[ -w $tmpd ]] || findmnt -no OPTIONS --target "$tmpd" 2>/dev/null | grep -qw noexec; then
    tmpd=$cache
  fi
  rm -f "$job/rc" "$job/out"
  TMPDIR=$tmpd timeout -k 5 "$limit" "$UML_KERNEL" mem="${UML_MEM:-768M}" \
    initrd="$cache/initramfs.gz" rdinit=/init umljob="$job" uml_dir="$job/.uml" \
    quiet con=null con0=null,fd:1 >"$job/console.log" 2>&1 </dev/null
  rc=$?
  rm -rf "$job/.uml"
  if [[ $rc == 124 || $rc == 137 ]]; then
    return 124
  fi
  [[ -f $job/rc ]] || return 125
  return "$(cat "$job/rc")"
}

# uml_report JOB_DIR GUEST_RC TIMEOUT: prints JOB_DIR/results, then a FAIL line for every
# scenario of JOB_DIR/plan without a result (the guest died or timed out), then `N passed, M
# failed`. Returns 0 only when nothing failed.
uml_report() {
  local job=$1 rc=$2 limit=$3 passed=0 failed=0 why s shown=
  if [[ -f $job/results ]]; then
    cat "$job/results"
    passed=$(grep -c '^PASS ' "$job/results")
    failed=$(grep -c '^FAIL ' "$job/results")
  fi
  why="guest exit $rc"
  [[ $rc == 124 ]] && why="timed out after $limit s"
  [[ $rc == 125 ]] && why="UML stopped without finishing"
  for s in $(cat "$job/plan" 2>/dev/null || echo uml-boot); do
    grep -qE "^(PASS|FAIL) $s(:|$)" "$job/results" 2>/dev/null && continue
    echo "FAIL $s: no result ($why)"
    failed=$((failed + 1))
    if [[ -z $shown ]]; then
      shown=1
      echo "    --- guest output (last 20 lines)"
      tail -20 "$job/out" 2>/dev/null | sed 's/^/    /'
      echo "    --- UML console (last 10 lines)"
      tail -10 "$job/console.log" 2>/dev/null | sed 's/^/    /'
    fi
  done
  if [[ $rc != 0 && $failed == 0 ]]; then
    echo "FAIL guest: $why"
    failed=1
  fi
  echo "$passed passed, $failed failed"
  [[ $failed == 0 ]]
}
