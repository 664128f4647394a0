"""Who a pod's processes run as on this machine, and what they can reach.

When the stack runs as root, each container runs as its manifest's ``runAsUser`` and
``runAsGroup`` (no supplementary groups), so an app cannot read the stack's private state
(admin token, kubeconfig, records). A stack run by another user cannot switch users: its pods
run as that user, and the embedded stack is then single-user.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class User:
    uid: int
    gid: int


def can_switch_users() -> bool:
    return os.geteuid() == 0


def pod_user(manifest: Mapping[str, Any]) -> User | None:
    """Whom the pod's files belong to: the pod's (or else its first container's) user.

    None when processes run as the stack's own user.
    """
    if not can_switch_users():
        return None
    spec = manifest.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    for context in (spec.get("securityContext"), *(c.get("securityContext") for c in containers)):
        user = _user(context or {}, {})
        if user is not None:
            return user
    return None


def container_user(manifest: Mapping[str, Any], container: Mapping[str, Any]) -> User | None:
    """Whom this container runs as: its own securityContext over the pod's, as the kubelet
    merges them. None when it runs as the stack's own user.

    Raises ValueError with the kubelet's message when the manifest asks for a non-root user
    but names none, and the stack runs as root.
    """
    pod_context = (manifest.get("spec") or {}).get("securityContext") or {}
    own = container.get("securityContext") or {}
    if not can_switch_users():
        return None
    user = _user(own, pod_context)
    non_root = own.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
    if user is None and non_root:
        raise ValueError("container has runAsNonRoot and image will run as root")
    if user is not None and user.uid == 0 and non_root:
        raise ValueError("container's runAsUser breaks non-root policy")
    return user


def fs_group(manifest: Mapping[str, Any]) -> int | None:
    """The pod's ``fsGroup``: the group its volumes belong to. None without one, or when the
    stack cannot switch users."""
    group = ((manifest.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    return int(group) if group is not None and can_switch_users() else None


def _user(own: Mapping[str, Any], pod: Mapping[str, Any]) -> User | None:
    uid = own.get("runAsUser", pod.get("runAsUser"))
    if uid is None:
        return None
    gid = own.get("runAsGroup", pod.get("runAsGroup", uid))
    return User(int(uid), int(gid))


def others_can_reach(directory: Path) -> bool:
    """Whether any user can walk down to ``directory`` (search permission for others on it
    and on every directory above it; listing is not needed)."""
    current = directory.absolute()
    for step in [current, *current.parents]:
        try:
            mode = step.stat().st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH:
            return False
    return True


def others_can_run(program: Path) -> bool:
    """Whether any user can run the file ``program`` (symlinks followed)."""
    try:
        target = program.resolve(strict=True)
        mode = target.stat().st_mode
    except OSError:
        return False
    runnable = stat.S_IROTH | stat.S_IXOTH
    return mode & runnable == runnable and others_can_reach(target.parent)


def hand_over(directory: Path, user: User, mode: int = 0o700) -> None:
    """Make ``directory`` (existing, empty) the user's own."""
    os.chown(directory, user.uid, user.gid)
    directory.chmod(mode)
