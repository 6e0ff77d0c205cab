# shellcheck shell=bash
# User-Mode Linux helpers shared by tests/uml/run and interop/run (source this file).
#
# User-Mode Linux is a kernel that runs as an ordinary process and has what the host kernel of our
# CI machines lacks: esp6, xfrm_user, mip6, veth. Which UML kernel runs is chosen per run by
# uml_select_kernel (Debian 12's 6.1 where it boots, Debian unstable's on AVX-512/AMX hosts). The guest sees the host's
# /usr and /etc copy-on-write (so it runs the host's iproute2, python3, strongSwan unchanged), the
# host's / read-only at /host, and one read-write job directory at /job. A boot takes ~2.5 s.

UML_LIB_DIR=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
UML_ROOT=$(cd "$UML_LIB_DIR/../.." && pwd)
# The kernel and its modules: set by uml_select_kernel (the system's, or one from Debian's archive).
UML_KERNEL=
UML_MODULES=
# (overridable for tests/uml/kernel-select, which stands in a kernel that fails like on AMX hosts)
UML_SYSTEM_KERNEL=${UML_SYSTEM_KERNEL:-/usr/bin/linux.uml}

# uml_ci_packages: the Debian packages .ci/run installs (.ci/packages without comments).
uml_ci_packages() { sed 's/#.*//' "$UML_ROOT/.ci/packages" | xargs; }

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

# uml_unlisted_packages CMD=PACKAGE...: prints the packages named that .ci/packages lacks. A tier
# that needs a package CI does not install passes on a machine where someone installed it by
# hand and fails on a fresh one; this makes it fail everywhere.
uml_unlisted_packages() {
  local spec pkg listed unlisted=()
  listed=" $(uml_ci_packages) "
  for spec in "$@"; do
    pkg=${spec#*=}
    [[ $listed == *" $pkg "* || " ${unlisted[*]} " == *" $pkg "* ]] || unlisted+=("$pkg")
  done
  echo "${unlisted[*]}"
}

# The packages every UML run needs on the host (the guest uses the host's binaries). The kernel
# itself is chosen by uml_select_kernel; patchelf is only needed when the system's does not boot.
UML_BASE_NEEDS=(
  "$UML_SYSTEM_KERNEL=user-mode-linux" /usr/bin/patchelf=patchelf /bin/busybox=busybox
  cpio=cpio gzip=gzip timeout=coreutils ip=iproute2 ping=iputils-ping /usr/bin/python3=python3
  modprobe=kmod
)

# uml_check [CMD=PACKAGE...]: root, packages present, packages listed in .ci/packages. Prints what
# is wrong and returns 1 when anything is.
uml_check() {
  local ok=0 missing unlisted
  if [[ $(id -u) != 0 ]]; then
    echo "not root: run it as root (sudo $0): the guest reaches the host's files through hostfs" \
      "with the rights of the user who started it" >&2
    ok=1
  fi
  unlisted=$(uml_unlisted_packages "${UML_BASE_NEEDS[@]}" "$@")
  if [[ -n $unlisted ]]; then
    echo "Debian packages this tier loads but .ci/packages does not list: $unlisted" >&2
    echo "add them to .ci/packages (CI installs only what it lists)" >&2
    ok=1
  fi
  missing=$(uml_missing_packages "${UML_BASE_NEEDS[@]}" "$@")
  if [[ -n $missing ]]; then
    echo "missing Debian packages: $missing" >&2
    echo "install them with: apt-get install -y --no-install-recommends $missing" >&2
    ok=1
  fi
  return $ok
}

# uml_debian_mirror: the URI of the Debian archive this machine's apt uses (not its security
# archive), read from apt's own view so that both sources.list formats work.
uml_debian_mirror() {
  apt-cache policy 2>/dev/null | awk '
    $1 ~ /^[0-9]+$/ && $2 ~ /^[a-z]+:\/\// { uri = $2; next }
    /release / && /o=Debian,/ && /l=Debian,/ && uri != "" { print uri; exit }
    { uri = "" }'
}

# uml_fetch_archive_kernel DIR: user-mode-linux and the libc6 it was built against, from Debian's
# unstable suite, into DIR (cached: nothing is fetched when DIR/ok exists). Uses a sources list,
# package lists and download cache of its own under DIR: the system's apt state and packages are
# not touched. The kernel's interpreter and library path are pointed at the unpacked glibc (it
# needs a newer one than Debian 12's), so only this one binary uses it.
uml_fetch_archive_kernel() {
  local dir=$1 mirror apt deb
  [[ -f $dir/ok && -x $dir/root/usr/bin/linux.uml ]] && return 0
  mirror=$(uml_debian_mirror)
  if [[ -z $mirror ]]; then
    echo "uml: no Debian archive in apt's sources (apt-cache policy); cannot fetch a newer UML" >&2
    return 1
  fi
  rm -rf "$dir"
  mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/deb" "$dir/root"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror unstable main" \
    >"$dir/apt/sources.list"
  apt=(apt-get -q -o "Dir::Etc::SourceList=$dir/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$dir/apt/lists" -o "Dir::Cache=$dir/apt/cache"
    -o Acquire::Languages=none -o APT::Sandbox::User=root)
  echo "uml: fetching user-mode-linux and libc6 from Debian unstable ($mirror)" >&2
  if ! "${apt[@]}" update >"$dir/apt.log" 2>&1 ||
    ! (cd "$dir/deb" && "${apt[@]}" download user-mode-linux libc6) >>"$dir/apt.log" 2>&1; then
    echo "uml: apt-get failed:" >&2
    tail -5 "$dir/apt.log" | sed 's/^/    /' >&2
    return 1
  fi
  for deb in "$dir"/deb/*.deb; do dpkg-deb -x "$deb" "$dir/root" || return 1; done
  local libdir=$dir/root/usr/lib/x86_64-linux-gnu
  if ! patchelf --set-interpreter "$libdir/ld-linux-x86-64.so.2" --set-rpath "$libdir" \
    "$dir/root/usr/bin/linux.uml"; then
    echo "uml: patchelf failed on $dir/root/usr/bin/linux.uml" >&2
    return 1
  fi
  rm -rf "$dir/apt/cache"
  dpkg-deb -f "$dir"/deb/user-mode-linux_*.deb Version >"$dir/version"
  touch "$dir/ok"
}

# uml_modules_dir KERNEL: the module tree that belongs to a UML binary (…/usr/bin/linux.uml ->
# …/usr/lib/uml/modules/<version>): one version directory is expected there.
uml_modules_dir() {
  local base
  base=$(cd "$(dirname "$1")/.." && pwd)/lib/uml/modules
  ls -d "$base"/*/ 2>/dev/null | head -1 | sed 's:/$::'
}

# uml_build_initramfs CACHE_DIR: builds the initramfs for $UML_KERNEL / $UML_MODULES (set by
# uml_select_kernel) unless it is up to date, and prints its path. The key covers the init
# script, this file, the kernel and busybox, so a package upgrade or an edit rebuilds it.
uml_build_initramfs() {
  local cache=$1 key tmp m dep lib a out
  key=$( (cat "$UML_LIB_DIR/init" "${BASH_SOURCE[0]}"; echo "$UML_MODULES"; sha256sum "$UML_KERNEL" /bin/busybox) |
    sha256sum | cut -c1-16)
  mkdir -p "$cache"
  out=$cache/initramfs-$key.gz
  if [[ -f $out ]]; then
    echo "$out"
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
    dep=$(grep -E "/$m\.ko(\.[a-z]+)?:" "$UML_MODULES/modules.dep") || {
      echo "uml: module $m not found in $UML_MODULES/modules.dep" >&2
      rm -rf "$tmp"
      return 1
    }
    # shellcheck disable=SC2086
    set -- ${dep#*:}
    local order=()
    for a in "$@"; do order=("$a" "${order[@]}"); done
    order+=("${dep%%:*}")
    for a in "${order[@]}"; do
      cp "$UML_MODULES/$a" "$tmp/mods/"
      basename "$a" >>"$tmp/etc/modules.boot"
    done
  done
  cp "$UML_LIB_DIR/init" "$tmp/init"
  chmod +x "$tmp/init"
  (cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.new"
  rm -rf "$tmp"
  mv "$out.new" "$out"
  echo "uml: built $out for $UML_KERNEL" >&2
  echo "$out"
}

# uml_probe CACHE_DIR: boots $UML_KERNEL to the guest's shell and back (~2 s). Returns 0 when the
# guest ran (UML_KERNEL_RELEASE = its uname -r); otherwise sets UML_PROBE_WHY to the console line
# that says why and returns 1.
uml_probe() {
  local cache=$1 job
  UML_PROBE_WHY=
  UML_INITRD=$(uml_build_initramfs "$cache") || {
    UML_PROBE_WHY="could not build its initramfs"
    return 1
  }
  job=$(mktemp -d "$cache/probe.XXXXXX")
  echo 'echo probe-ok "$(uname -r)"' >"$job/cmd"
  uml_boot "$cache" "$job" 60
  if grep -q '^probe-ok' "$job/out" 2>/dev/null; then
    UML_KERNEL_RELEASE=$(awk '/^probe-ok/ {print $2}' "$job/out")
    rm -rf "$job"
    return 0
  fi
  UML_PROBE_WHY=$(grep -m1 -iE 'failed|panic|error|not found' "$job/console.log" 2>/dev/null)
  if [[ -n $UML_PROBE_WHY ]]; then
    rm -rf "$job"
  else
    UML_PROBE_WHY="no output from the guest (see $job/console.log)"
  fi
  return 1
}

# uml_select_kernel CACHE_DIR: chooses the UML kernel for this run and says which in one line.
# The system's (Debian's user-mode-linux) when it boots on this CPU; otherwise Debian unstable's,
# fetched into CACHE_DIR/kernel-unstable. Debian 12's UML 6.1 (and 13's 6.12) die at once on
# hosts with a large XSAVE area (AVX-512, AMX): the host refuses their ptrace PTRACE_SETREGSET
# of the FP state ("ptrace set fp regs failed, errno = 14"). UML_KERNEL_SOURCE=system|unstable
# forces a choice. Sets UML_KERNEL, UML_MODULES, UML_INITRD.
uml_select_kernel() {
  local cache=$1 why_system="" dir=$1/kernel-unstable force=${UML_KERNEL_SOURCE:-}
  local cpu
  cpu=$(grep -m1 -owE 'amx_tile|avx512f' /proc/cpuinfo | sort -u | xargs)
  if [[ $force == unstable ]]; then
    why_system="not tried: UML_KERNEL_SOURCE=unstable"
  else
    if [[ -x $UML_SYSTEM_KERNEL ]]; then
      UML_KERNEL=$UML_SYSTEM_KERNEL
      UML_MODULES=$(uml_modules_dir "$UML_KERNEL")
      if [[ -z $UML_MODULES ]]; then
        why_system="no module tree beside $UML_KERNEL (…/lib/uml/modules/<version>)"
      elif uml_probe "$cache"; then
        echo "uml: kernel $UML_KERNEL ($UML_KERNEL_RELEASE, the system's user-mode-linux: it boots on this CPU${cpu:+ ($cpu)})"
        return 0
      else
        why_system=$UML_PROBE_WHY
      fi
    else
      why_system="user-mode-linux is not installed"
    fi
    if [[ $force == system ]]; then
      echo "uml: the system's UML kernel cannot be used: $why_system" >&2
      return 1
    fi
  fi
  uml_fetch_archive_kernel "$dir" || return 1
  UML_KERNEL=$dir/root/usr/bin/linux.uml
  UML_MODULES=$(uml_modules_dir "$UML_KERNEL")
  if ! uml_probe "$cache"; then
    echo "uml: neither UML kernel boots here: system: ${why_system:-not tried};" \
      "unstable: $UML_PROBE_WHY" >&2
    return 1
  fi
  echo "uml: kernel $UML_KERNEL ($UML_KERNEL_RELEASE, Debian unstable's user-mode-linux $(cat "$dir/version"))" \
    "instead of the system's (${why_system}${cpu:+; this CPU has $cpu})"
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
    initrd="${UML_INITRD:?uml_select_kernel first}" rdinit=/init umljob="$job" \
    umlmods="/host$UML_MODULES" uml_dir="$job/.uml" \
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
