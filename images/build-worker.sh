#!/usr/bin/env bash
# Build steps of the INK worker image (AlmaLinux 9), shared by Dockerfile.worker and
# worker.def so that both carry the same stack: run inside the image with the INK Hub source
# at $INK_SRC. Versions come from scripts/app-versions (code-server, JSROOT, Node) and
# package-lock.json (noVNC), the same pins CI tests with.
set -euo pipefail
INK_SRC=${INK_SRC:-/opt/ink-hub/src}
INK_VENV=${INK_VENV:-/opt/ink-hub/venv}
# shellcheck source=../scripts/app-versions
source "$INK_SRC/scripts/app-versions"

dnf install -y -q epel-release
dnf module enable -y -q "nodejs:$NODE_MAJOR"
dnf install -y -q python3.11 python3.11-devel nodejs npm git tar findutils
# the desktop (TigerVNC, openbox, xterm), Enode's OpenSSH and rsync, and code-server, from the pinned versions
"$INK_SRC/scripts/install-apps" --prefix /opt/ink-apps
# front-end assets (noVNC from package-lock.json, JSROOT packed) into the packages' static dirs
(cd "$INK_SRC" && npm ci --no-audit --no-fund --loglevel=error && scripts/build-assets)
python3.11 -m venv "$INK_VENV"
"$INK_VENV/bin/pip" install -q --upgrade pip
"$INK_VENV/bin/pip" install -q "$INK_SRC"
ln -sfn /opt/ink-apps/node_modules/.bin/code-server /usr/local/bin/code-server
# what the image does not need at run time
rm -rf "$INK_SRC/node_modules" /root/.npm /root/.cache
dnf clean all
chmod -R a+rX /opt/ink-hub /opt/ink-apps
"$INK_VENV/bin/python" -c "import ink_proxy_ext.vscode, ink_proxy_ext.desktop, ink_proxy_ext.rootbrowse, ink_proxy_ext.sshd"
test -x /usr/sbin/sshd && test -x /usr/libexec/openssh/sftp-server  # Enode
echo "build-worker: code-server $CODE_SERVER_VERSION, JSROOT $JSROOT_VERSION, Node $NODE_MAJOR"
