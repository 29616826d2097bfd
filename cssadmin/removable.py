"""Tell whether a directory lives on removable media (a USB stick, an SD card).

Wrapped key files should go only where they can be carried off and locked away.
Linux answers from sysfs (the disk's `removable` flag and the bus it hangs off);
Windows from the volume's drive type and, for "fixed" drives, its storage bus.
Only the standard library is used.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Detection:
    """Whether a path is on removable media, and what was found, in words."""

    removable: bool
    detail: str


def detect(
    path: str | os.PathLike,
    *,
    platform: str | None = None,
    sysfs_root: str = "/sys",
    proc_root: str = "/proc",
    windows_api=None,
) -> Detection:
    """Say whether `path` is on removable media.

    Never raises when the answer cannot be found out: it returns removable=False
    with a detail naming what could not be determined. A missing path on Linux
    raises FileNotFoundError.
    """
    platform = sys.platform if platform is None else platform
    path_text = os.fspath(path)
    if platform.startswith("linux"):
        return _linux_detect(os.stat(path).st_dev, sysfs_root, proc_root, path_text)
    if platform == "win32":
        api = windows_api if windows_api is not None else _WindowsApi()
        return _windows_detect(path_text, api)
    return Detection(
        False,
        f"cannot tell whether {path_text} is on removable media: platform {platform!r} is not supported",
    )


# ---------------------------------------------------------------- Linux

_REMOVABLE_BUSES = ("usb", "mmc")

# Device-path components that betray the bus even where no `subsystem` link says
# so: USB root hubs are "usb1", "usb2"...; MMC/SD hosts sit under "mmc_host/mmc0".
_BUS_OF_PATH_COMPONENT = (
    (re.compile(r"usb\d*"), "usb"),
    (re.compile(r"mmc_host|mmc\d+"), "mmc"),
)


@dataclass(frozen=True)
class _Disk:
    name: str
    removable_flag: str  # "1", "0", or "unknown" when sysfs has no `removable` file
    bus: str

    @property
    def removable(self) -> bool:
        # USB disks and SD cards often report removable=0; their bus gives them away.
        return self.removable_flag == "1" or self.bus in _REMOVABLE_BUSES

    def summary(self) -> str:
        return f"disk {self.name}, removable={self.removable_flag}, bus {self.bus}"


@dataclass(frozen=True)
class _Mount:
    fstype: str
    source: str


def detect_fd(descriptor: int, path_text: str, *, platform: str | None = None, sysfs_root: str = "/sys",
              proc_root: str = "/proc", windows_api=None) -> Detection:
    """detect() for an open file or directory, judged by the descriptor itself (its st_dev), so a path
    swapped for another mount after it was opened cannot change the answer. On Windows, which has no
    device number to go by, the path is asked again."""
    platform = sys.platform if platform is None else platform
    if platform.startswith("linux"):
        return _linux_detect(os.fstat(descriptor).st_dev, sysfs_root, proc_root, path_text)
    return detect(path_text, platform=platform, sysfs_root=sysfs_root, proc_root=proc_root,
                  windows_api=windows_api)


# Filesystems that give their mounts an anonymous device number (major 0) although they live on a real
# block device named as the mount's source. Every other major-0 filesystem is refused.
_BLOCK_FILESYSTEMS_WITH_ANONYMOUS_DEV = frozenset({"btrfs", "bcachefs"})


def _linux_detect(dev: int, sysfs_root: str, proc_root: str, path_text: str) -> Detection:
    """Detection for a file whose st_dev is `dev`, read from the given sysfs and procfs."""
    sysfs = Path(sysfs_root)
    major, minor = os.major(dev), os.minor(dev)
    if major == 0:
        return _detect_unnamed_device(f"{major}:{minor}", sysfs, Path(proc_root), path_text)
    return _detect_block_device(f"{major}:{minor}", sysfs, path_text)


def _detect_unnamed_device(dev_id: str, sysfs: Path, proc: Path, path_text: str) -> Detection:
    """Major 0 is the kernel's anonymous device: tmpfs, overlay, proc, but also btrfs."""
    mountinfo = proc / "self" / "mountinfo"
    mount = _mount_of(dev_id, mountinfo)
    if mount is None:
        return Detection(
            False,
            f"{path_text} is on a virtual filesystem (device {dev_id}, not listed in {mountinfo})"
            " with no block device",
        )
    if mount.fstype not in _BLOCK_FILESYSTEMS_WITH_ANONYMOUS_DEV:
        # tmpfs, fuse, nfs, cifs, overlay...: whatever its source string says ("mount -t tmpfs /dev/sdb1
        # DIR" is allowed), such a filesystem is not on the device it names.
        return Detection(
            False,
            f"{path_text} is on a virtual filesystem ({mount.fstype}, source {mount.source})"
            " with no block device",
        )
    backing_dev_id = _block_device_id(mount.source, sysfs)
    if backing_dev_id is not None:
        return _detect_block_device(backing_dev_id, sysfs, path_text)
    return Detection(
        False,
        f"{path_text} is on a virtual filesystem ({mount.fstype}, source {mount.source})"
        " with no block device",
    )


def _mount_of(dev_id: str, mountinfo: Path) -> _Mount | None:
    """The filesystem type and source of the first mount of `dev_id` ("0:45")."""
    text = _read_text(mountinfo)
    if text is None:
        return None
    for line in text.splitlines():
        fields = line.split(" ")
        # id parent maj:min root mountpoint options [optional...] - fstype source superoptions
        if len(fields) < 10 or fields[2] != dev_id or "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if len(fields) > separator + 2:
            return _Mount(_unescape(fields[separator + 1]), _unescape(fields[separator + 2]))
    return None


def _unescape(mountinfo_field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), mountinfo_field)


def _block_device_id(mount_source: str, sysfs: Path) -> str | None:
    """The major:minor ("8:17") of a mount source such as /dev/sdb1; None if it is no block device."""
    if not mount_source.startswith("/dev/"):
        return None
    device_name = os.path.basename(os.path.realpath(mount_source))  # /dev/mapper/x -> dm-0
    return _read_text(sysfs / "class" / "block" / device_name / "dev")


def _detect_block_device(dev_id: str, sysfs: Path, path_text: str) -> Detection:
    dev_link = sysfs / "dev" / "block" / dev_id
    if not dev_link.exists():
        return Detection(
            False,
            f"{path_text} is on block device {dev_id}, but {dev_link} is missing:"
            " cannot tell whether it is removable",
        )
    devices_root = sysfs.resolve() / "devices"
    block_dir = dev_link.resolve()
    slaves = _slaves(_whole_disk(block_dir))
    disks = [_describe_disk(disk_dir, devices_root) for disk_dir in _backing_disks(block_dir)]
    stacking = f"stacked on {', '.join(slave.name for slave in slaves)}: " if slaves else ""
    summaries = "; ".join(disk.summary() for disk in disks)
    # A volume spread over several disks leaves with the stick only if all of them are sticks.
    return Detection(
        all(disk.removable for disk in disks),
        f"{path_text} is on /dev/{block_dir.name} ({stacking}{summaries})",
    )


def _whole_disk(block_dir: Path) -> Path:
    """The disk a partition belongs to (its parent directory in sysfs), or the disk itself."""
    return block_dir.parent if (block_dir / "partition").exists() else block_dir


def _slaves(disk_dir: Path) -> list[Path]:
    """The block devices a device-mapper or md device is built on, resolved."""
    try:
        entries = list((disk_dir / "slaves").iterdir())
    except OSError:
        return []
    return sorted((entry.resolve() for entry in entries), key=lambda slave: slave.name)


def _backing_disks(block_dir: Path) -> list[Path]:
    """The whole disks holding a block device, following dm/md slaves down."""
    disk_dir = _whole_disk(block_dir)
    slaves = _slaves(disk_dir)
    if not slaves:
        return [disk_dir]
    found = [disk for slave in slaves for disk in _backing_disks(slave)]
    return list(dict.fromkeys(found))  # two partitions of one disk name it once


def _describe_disk(disk_dir: Path, devices_root: Path) -> _Disk:
    return _Disk(
        name=disk_dir.name,
        removable_flag=_read_text(disk_dir / "removable") or "unknown",
        bus=_bus_of(disk_dir, devices_root),
    )


def _bus_of(disk_dir: Path, devices_root: Path) -> str:
    """The bus a disk hangs off: usb or mmc if either is anywhere above it, else the nearest."""
    ancestors = [
        parent for parent in disk_dir.parents
        if parent != devices_root and parent.is_relative_to(devices_root)
    ]
    subsystems = [name for name in map(_subsystem_name, ancestors) if name]
    component_buses = {_bus_of_component(ancestor.name) for ancestor in ancestors}
    for bus in _REMOVABLE_BUSES:
        if bus in subsystems or bus in component_buses:
            return bus
    if subsystems:
        return subsystems[0]
    return "virtual" if (devices_root / "virtual") in disk_dir.parents else "unknown"


def _subsystem_name(device_dir: Path) -> str | None:
    """The last part of where a device's `subsystem` link points: .../bus/usb gives "usb"."""
    try:
        return os.path.basename(os.readlink(device_dir / "subsystem"))
    except OSError:
        return None


def _bus_of_component(component: str) -> str | None:
    for pattern, bus in _BUS_OF_PATH_COMPONENT:
        if pattern.fullmatch(component):
            return bus
    return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


# ---------------------------------------------------------------- Windows

DRIVE_REMOVABLE = 2
DRIVE_FIXED = 3

_DRIVE_TYPE_NAMES = {
    0: "unknown",
    1: "no root directory",
    2: "removable",
    3: "fixed",
    4: "remote",
    5: "CD-ROM",
    6: "RAM disk",
}

BUS_TYPE_USB = 7
BUS_TYPE_SD = 12
BUS_TYPE_MMC = 13
_REMOVABLE_BUS_TYPES = (BUS_TYPE_USB, BUS_TYPE_SD, BUS_TYPE_MMC)

# STORAGE_BUS_TYPE, winioctl.h
_BUS_TYPE_NAMES = {
    0: "unknown",
    1: "SCSI",
    2: "ATAPI",
    3: "ATA",
    4: "IEEE 1394",
    5: "SSA",
    6: "Fibre Channel",
    7: "USB",
    8: "RAID",
    9: "iSCSI",
    10: "SAS",
    11: "SATA",
    12: "SD",
    13: "MMC",
    14: "virtual",
    15: "file-backed virtual",
    16: "Storage Spaces",
    17: "NVMe",
    18: "SCM",
    19: "UFS",
}


def _windows_detect(path_text: str, api) -> Detection:
    try:
        root = api.GetVolumePathNameW(path_text)
        drive_type = api.GetDriveTypeW(root)
    except OSError as error:
        return Detection(False, f"cannot tell whether {path_text} is on removable media: {error}")
    drive_name = _DRIVE_TYPE_NAMES.get(drive_type, f"type {drive_type}")
    if drive_type != DRIVE_FIXED:
        return Detection(drive_type == DRIVE_REMOVABLE, f"{path_text} is on {root} (drive type {drive_name})")
    try:
        bus_type = api.storage_bus_type(root)
    except OSError as error:
        return Detection(False, f"{path_text} is on {root} (drive type fixed, bus unknown: {error})")
    bus_name = "unknown" if bus_type is None else _BUS_TYPE_NAMES.get(bus_type, f"type {bus_type}")
    if bus_type in _REMOVABLE_BUS_TYPES:
        return Detection(
            True,
            f"{path_text} is on {root} (drive type fixed, bus {bus_name}: removable media that reports fixed)",
        )
    return Detection(False, f"{path_text} is on {root} (drive type fixed, bus {bus_name})")


class _WindowsApi:
    """The kernel32 calls `_windows_detect` needs, through ctypes. Windows only."""

    _IOCTL_STORAGE_QUERY_PROPERTY = 0x2D1400
    _STORAGE_DEVICE_PROPERTY = 0  # STORAGE_PROPERTY_ID.StorageDeviceProperty
    _PROPERTY_STANDARD_QUERY = 0  # STORAGE_QUERY_TYPE.PropertyStandardQuery
    _BUS_TYPE_OFFSET = 28  # of STORAGE_DEVICE_DESCRIPTOR.BusType
    _FILE_SHARE_READ_WRITE = 0x1 | 0x2
    _OPEN_EXISTING = 3
    _LONGEST_PATH = 32768

    def __init__(self) -> None:
        import ctypes
        from ctypes import wintypes

        self._ctypes = ctypes
        self._wintypes = wintypes
        # A private WinDLL, not ctypes.windll.kernel32, so the argtypes set here bind
        # nobody else and get_last_error() sees this module's errors.
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        self._declare(kernel32.GetVolumePathNameW, wintypes.BOOL,
                      wintypes.LPCWSTR, wintypes.LPWSTR, wintypes.DWORD)
        self._declare(kernel32.GetVolumeNameForVolumeMountPointW, wintypes.BOOL,
                      wintypes.LPCWSTR, wintypes.LPWSTR, wintypes.DWORD)
        self._declare(kernel32.GetDriveTypeW, wintypes.UINT, wintypes.LPCWSTR)
        self._declare(kernel32.CreateFileW, wintypes.HANDLE,
                      wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, wintypes.LPVOID,
                      wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE)
        self._declare(kernel32.DeviceIoControl, wintypes.BOOL,
                      wintypes.HANDLE, wintypes.DWORD, wintypes.LPVOID, wintypes.DWORD,
                      wintypes.LPVOID, wintypes.DWORD, wintypes.LPDWORD, wintypes.LPVOID)
        self._declare(kernel32.CloseHandle, wintypes.BOOL, wintypes.HANDLE)
        self._kernel32 = kernel32
        self._invalid_handle = wintypes.HANDLE(-1).value

    @staticmethod
    def _declare(function, restype, *argtypes) -> None:
        function.restype = restype
        function.argtypes = argtypes

    def _raise_last_error(self):
        raise self._ctypes.WinError(self._ctypes.get_last_error())

    def GetVolumePathNameW(self, path: str) -> str:
        root = self._ctypes.create_unicode_buffer(self._LONGEST_PATH)
        if not self._kernel32.GetVolumePathNameW(path, root, len(root)):
            self._raise_last_error()
        return root.value

    def GetDriveTypeW(self, root: str) -> int:
        return self._kernel32.GetDriveTypeW(root)

    def storage_bus_type(self, root: str) -> int | None:
        ctypes = self._ctypes
        handle = self._kernel32.CreateFileW(
            self._volume_device(root), 0, self._FILE_SHARE_READ_WRITE, None, self._OPEN_EXISTING, 0, None
        )
        if handle == self._invalid_handle:
            self._raise_last_error()
        try:
            # STORAGE_PROPERTY_QUERY: PropertyId, QueryType (4-byte enums), AdditionalParameters[1], padded to 12.
            query = (self._STORAGE_DEVICE_PROPERTY.to_bytes(4, "little")
                     + self._PROPERTY_STANDARD_QUERY.to_bytes(4, "little") + bytes(4))
            query_buffer = ctypes.create_string_buffer(query, len(query))
            descriptor = ctypes.create_string_buffer(1024)
            returned = self._wintypes.DWORD()
            if not self._kernel32.DeviceIoControl(
                handle, self._IOCTL_STORAGE_QUERY_PROPERTY, query_buffer, len(query_buffer),
                descriptor, len(descriptor), ctypes.byref(returned), None,
            ):
                self._raise_last_error()
        finally:
            self._kernel32.CloseHandle(handle)
        bus_type_end = self._BUS_TYPE_OFFSET + 4
        if returned.value < bus_type_end:
            return None
        return int.from_bytes(descriptor.raw[self._BUS_TYPE_OFFSET:bus_type_end], "little")

    def _volume_device(self, root: str) -> str:
        r"""What CreateFileW opens for a volume root: \\.\E: for E:\, else the volume GUID path."""
        if re.fullmatch(r"[A-Za-z]:\\", root):
            return f"\\\\.\\{root[0]}:"
        # A volume mounted on a folder (C:\mnt\usb\) has no drive letter.
        volume_name = self._ctypes.create_unicode_buffer(64)  # \\?\Volume{GUID}\ is 49 chars
        if not self._kernel32.GetVolumeNameForVolumeMountPointW(root, volume_name, len(volume_name)):
            self._raise_last_error()
        return volume_name.value.rstrip("\\")  # with the backslash CreateFileW opens the root dir, not the volume
