"""Tests for cssadmin.removable: fake sysfs trees for Linux, a fake kernel32 for Windows."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cssadmin.removable import Detection, _linux_detect, detect

USB_STICK = "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb"
SATA_DISK = "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda"


# ---------------------------------------------------------------- fake sysfs

def add_block_device(
    sysfs: Path, device_path: str, dev_id: str, *, removable: str | None = None, partition: bool = False
) -> Path:
    """Create sysfs/devices/<device_path> and link /dev/block/<dev_id> and /class/block/<name> to it."""
    device_dir = sysfs / "devices" / device_path
    device_dir.mkdir(parents=True)
    (device_dir / "dev").write_text(dev_id + "\n")
    if removable is not None:
        (device_dir / "removable").write_text(removable + "\n")
    if partition:
        (device_dir / "partition").write_text("1\n")
    link_relative(sysfs / "dev" / "block" / dev_id, device_dir)
    link_relative(sysfs / "class" / "block" / device_dir.name, device_dir)
    return device_dir


def set_subsystem(sysfs: Path, device_path: str, subsystem: str) -> None:
    """Give sysfs/devices/<device_path> a `subsystem` link to sysfs/<subsystem>, e.g. "bus/usb"."""
    target = sysfs / subsystem
    target.mkdir(parents=True, exist_ok=True)
    link_relative(sysfs / "devices" / device_path / "subsystem", target)


def add_slave(holder_dir: Path, slave_dir: Path) -> None:
    link_relative(holder_dir / "slaves" / slave_dir.name, slave_dir)


def link_relative(link: Path, target: Path) -> None:
    """A relative symlink, as the kernel makes them (../../devices/...)."""
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent))


def add_usb_stick(sysfs: Path, *, removable: str = "1") -> Path:
    """sdb on a USB mass-storage interface, with the subsystem links a real kernel has; returns sdb1."""
    add_block_device(sysfs, USB_STICK, "8:16", removable=removable)
    for device, subsystem in [
        ("pci0000:00/0000:00:14.0", "bus/pci"),
        ("pci0000:00/0000:00:14.0/usb2", "bus/usb"),
        ("pci0000:00/0000:00:14.0/usb2/2-1", "bus/usb"),
        ("pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0", "bus/usb"),
        ("pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6", "bus/scsi"),
        ("pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0", "bus/scsi"),
        ("pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0", "bus/scsi"),
    ]:
        set_subsystem(sysfs, device, subsystem)
    return add_block_device(sysfs, USB_STICK + "/sdb1", "8:17", partition=True)


def add_sata_disk(sysfs: Path) -> Path:
    """sda on an AHCI controller; returns sda2."""
    add_block_device(sysfs, SATA_DISK, "8:0", removable="0")
    for device, subsystem in [
        ("pci0000:00/0000:00:17.0", "bus/pci"),
        ("pci0000:00/0000:00:17.0/ata1/host0", "bus/scsi"),
        ("pci0000:00/0000:00:17.0/ata1/host0/target0:0:0", "bus/scsi"),
        ("pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0", "bus/scsi"),
    ]:
        set_subsystem(sysfs, device, subsystem)
    return add_block_device(sysfs, SATA_DISK + "/sda2", "8:2", partition=True)


def write_mountinfo(proc: Path, *lines: str) -> None:
    (proc / "self").mkdir(parents=True, exist_ok=True)
    (proc / "self" / "mountinfo").write_text("".join(line + "\n" for line in lines))


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    if not hasattr(os, "makedev"):
        pytest.skip("Linux sysfs detection: Windows has no device numbers (os.makedev, os.major)")
    root = tmp_path / "sys"
    root.mkdir()
    return root


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    write_mountinfo(root, "22 27 0:21 / /proc rw,relatime - proc proc rw")
    return root


def linux(dev: int, sysfs: Path, proc: Path, path_text: str = "/media/usb") -> Detection:
    return _linux_detect(dev, str(sysfs), str(proc), path_text)


# ---------------------------------------------------------------- Linux block devices

def test_usb_stick_partition_is_removable(sysfs, proc):
    add_usb_stick(sysfs)

    assert linux(os.makedev(8, 17), sysfs, proc) == Detection(
        True, "/media/usb is on /dev/sdb1 (disk sdb, removable=1, bus usb)"
    )


def test_usb_disk_reporting_removable_0_is_removable_by_its_bus(sysfs, proc):
    add_usb_stick(sysfs, removable="0")

    assert linux(os.makedev(8, 17), sysfs, proc) == Detection(
        True, "/media/usb is on /dev/sdb1 (disk sdb, removable=0, bus usb)"
    )


def test_usb_bus_is_found_from_path_components_alone(sysfs, proc):
    add_block_device(sysfs, USB_STICK, "8:16", removable="0")  # no subsystem links at all
    add_block_device(sysfs, USB_STICK + "/sdb1", "8:17", partition=True)

    assert linux(os.makedev(8, 17), sysfs, proc) == Detection(
        True, "/media/usb is on /dev/sdb1 (disk sdb, removable=0, bus usb)"
    )


def test_usb_bus_is_found_from_subsystem_links_alone(sysfs, proc):
    # A path with no usbN component: only the port's subsystem link says usb.
    add_block_device(sysfs, "platform/hub/port1/host3/target3:0:0/3:0:0:0/block/sdc", "8:32", removable="0")
    set_subsystem(sysfs, "platform/hub/port1", "bus/usb")
    set_subsystem(sysfs, "platform/hub/port1/host3/target3:0:0/3:0:0:0", "bus/scsi")

    assert linux(os.makedev(8, 32), sysfs, proc) == Detection(
        True, "/media/usb is on /dev/sdc (disk sdc, removable=0, bus usb)"
    )


def test_sd_card_on_mmc_host_is_removable(sysfs, proc):
    card = "pci0000:00/0000:00:1c.0/0000:02:00.0/rtsx_pci_sdmmc.0/mmc_host/mmc0/mmc0:aaaa/block/mmcblk0"
    add_block_device(sysfs, card, "179:0", removable="0")
    add_block_device(sysfs, card + "/mmcblk0p1", "179:1", partition=True)
    set_subsystem(sysfs, "pci0000:00/0000:00:1c.0/0000:02:00.0/rtsx_pci_sdmmc.0/mmc_host/mmc0", "class/mmc_host")
    set_subsystem(sysfs, "pci0000:00/0000:00:1c.0/0000:02:00.0/rtsx_pci_sdmmc.0/mmc_host/mmc0/mmc0:aaaa", "bus/mmc")

    assert linux(os.makedev(179, 1), sysfs, proc, "/media/sd") == Detection(
        True, "/media/sd is on /dev/mmcblk0p1 (disk mmcblk0, removable=0, bus mmc)"
    )


def test_sata_disk_partition_is_not_removable(sysfs, proc):
    add_sata_disk(sysfs)

    assert linux(os.makedev(8, 2), sysfs, proc, "/home/op") == Detection(
        False, "/home/op is on /dev/sda2 (disk sda, removable=0, bus scsi)"
    )


def test_nvme_partition_is_not_removable(sysfs, proc):
    controller = "pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0"
    add_block_device(sysfs, controller + "/nvme0n1", "259:0", removable="0")
    add_block_device(sysfs, controller + "/nvme0n1/nvme0n1p2", "259:2", partition=True)
    set_subsystem(sysfs, "pci0000:00/0000:00:1d.0/0000:3d:00.0", "bus/pci")
    set_subsystem(sysfs, controller, "class/nvme")

    assert linux(os.makedev(259, 2), sysfs, proc, "/") == Detection(
        False, "/ is on /dev/nvme0n1p2 (disk nvme0n1, removable=0, bus nvme)"
    )


def test_virtio_whole_disk_is_not_removable(sysfs, proc):
    add_block_device(sysfs, "pci0000:00/0000:00:02.0/virtio1/block/vda", "254:0", removable="0")
    set_subsystem(sysfs, "pci0000:00/0000:00:02.0", "bus/pci")
    set_subsystem(sysfs, "pci0000:00/0000:00:02.0/virtio1", "bus/virtio")

    assert linux(os.makedev(254, 0), sysfs, proc, "/work") == Detection(
        False, "/work is on /dev/vda (disk vda, removable=0, bus virtio)"
    )


def test_disk_without_removable_flag_says_unknown(sysfs, proc):
    add_block_device(sysfs, "pci0000:00/0000:00:02.0/virtio1/block/vda", "254:0")
    set_subsystem(sysfs, "pci0000:00/0000:00:02.0/virtio1", "bus/virtio")

    assert linux(os.makedev(254, 0), sysfs, proc, "/work") == Detection(
        False, "/work is on /dev/vda (disk vda, removable=unknown, bus virtio)"
    )


def test_loop_device_is_not_removable(sysfs, proc):
    add_block_device(sysfs, "virtual/block/loop0", "7:0", removable="0")

    assert linux(os.makedev(7, 0), sysfs, proc, "/mnt/image") == Detection(
        False, "/mnt/image is on /dev/loop0 (disk loop0, removable=0, bus virtual)"
    )


def test_dm_crypt_on_usb_stick_follows_slaves_to_the_stick(sysfs, proc):
    stick_partition = add_usb_stick(sysfs)
    crypt = add_block_device(sysfs, "virtual/block/dm-0", "253:0", removable="0")
    add_slave(crypt, stick_partition)

    assert linux(os.makedev(253, 0), sysfs, proc, "/media/secure") == Detection(
        True, "/media/secure is on /dev/dm-0 (stacked on sdb1: disk sdb, removable=1, bus usb)"
    )


def test_lvm_on_luks_on_usb_stick_follows_two_layers(sysfs, proc):
    stick_partition = add_usb_stick(sysfs)
    crypt = add_block_device(sysfs, "virtual/block/dm-0", "253:0", removable="0")
    volume = add_block_device(sysfs, "virtual/block/dm-1", "253:1", removable="0")
    add_slave(crypt, stick_partition)
    add_slave(volume, crypt)

    assert linux(os.makedev(253, 1), sysfs, proc, "/media/secure") == Detection(
        True, "/media/secure is on /dev/dm-1 (stacked on dm-0: disk sdb, removable=1, bus usb)"
    )


def test_volume_spanning_fixed_and_usb_disks_is_not_removable(sysfs, proc):
    stick_partition = add_usb_stick(sysfs)
    sata_partition = add_sata_disk(sysfs)
    volume = add_block_device(sysfs, "virtual/block/dm-0", "253:0", removable="0")
    add_slave(volume, stick_partition)
    add_slave(volume, sata_partition)

    assert linux(os.makedev(253, 0), sysfs, proc, "/data") == Detection(
        False,
        "/data is on /dev/dm-0 (stacked on sda2, sdb1: "
        "disk sda, removable=0, bus scsi; disk sdb, removable=1, bus usb)",
    )


def test_missing_sysfs_entry_cannot_tell(sysfs, proc):
    add_sata_disk(sysfs)

    assert linux(os.makedev(8, 33), sysfs, proc) == Detection(
        False,
        f"/media/usb is on block device 8:33, but {sysfs}/dev/block/8:33 is missing:"
        " cannot tell whether it is removable",
    )


# ---------------------------------------------------------------- Linux without a block device

def test_tmpfs_is_a_virtual_filesystem(sysfs, tmp_path):
    proc = tmp_path / "proc"
    write_mountinfo(
        proc,
        "22 27 0:21 / /proc rw,relatime - proc proc rw",
        "45 27 0:45 / /run/user/1000 rw,nosuid,nodev shared:7 - tmpfs tmpfs rw,size=814812k",
    )

    assert linux(os.makedev(0, 45), sysfs, proc, "/run/user/1000") == Detection(
        False, "/run/user/1000 is on a virtual filesystem (tmpfs, source tmpfs) with no block device"
    )


def test_overlay_with_escaped_source_is_a_virtual_filesystem(sysfs, tmp_path):
    proc = tmp_path / "proc"
    write_mountinfo(proc, "301 290 0:52 / / rw,relatime master:1 - overlay my\\040overlay rw,lowerdir=/l")

    assert linux(os.makedev(0, 52), sysfs, proc, "/work") == Detection(
        False, "/work is on a virtual filesystem (overlay, source my overlay) with no block device"
    )


def test_unlisted_anonymous_device_is_a_virtual_filesystem(sysfs, proc):
    assert linux(os.makedev(0, 99), sysfs, proc, "/x") == Detection(
        False,
        f"/x is on a virtual filesystem (device 0:99, not listed in {proc}/self/mountinfo)"
        " with no block device",
    )


def test_btrfs_anonymous_device_is_traced_to_its_usb_partition(sysfs, tmp_path):
    # btrfs gives every subvolume an anonymous st_dev; mountinfo names the real device.
    add_usb_stick(sysfs)
    proc = tmp_path / "proc"
    write_mountinfo(proc, "88 27 0:40 /@keys /media/usb rw,relatime - btrfs /dev/sdb1 rw,subvol=/@keys")

    assert linux(os.makedev(0, 40), sysfs, proc) == Detection(
        True, "/media/usb is on /dev/sdb1 (disk sdb, removable=1, bus usb)"
    )


# ---------------------------------------------------------------- detect() itself

def test_detect_looks_up_the_paths_own_device(tmp_path, sysfs, proc):
    dev = os.stat(tmp_path).st_dev
    if os.major(dev) == 0:
        pytest.skip("tmp_path is on an anonymous device here; a fake /sys/dev/block entry cannot stand for it")
    dev_id = f"{os.major(dev)}:{os.minor(dev)}"
    add_block_device(sysfs, USB_STICK + "x", dev_id, removable="1")  # disk named "sdbx"

    assert detect(tmp_path, platform="linux", sysfs_root=str(sysfs), proc_root=str(proc)) == Detection(
        True, f"{tmp_path} is on /dev/sdbx (disk sdbx, removable=1, bus usb)"
    )


def test_detect_missing_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        detect(tmp_path / "absent", platform="linux")


def test_unsupported_platform_cannot_tell(tmp_path):
    assert detect(tmp_path, platform="darwin") == Detection(
        False, f"cannot tell whether {tmp_path} is on removable media: platform 'darwin' is not supported"
    )


def _cwd_source_and_removable_per_util_linux(cwd: str) -> tuple[str, bool]:
    """An independent opinion from findmnt and lsblk: the mount source, and whether it is removable."""
    source = subprocess.run(
        ["findmnt", "-n", "-v", "-o", "SOURCE", "-T", cwd], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not source.startswith("/dev/"):
        return source, False
    listing = subprocess.run(
        ["lsblk", "-J", "-s", "-o", "NAME,RM,TRAN", source], capture_output=True, text=True, check=True
    ).stdout
    pending = json.loads(listing)["blockdevices"]
    while pending:  # -s lists the device, then what it is built on as "children"
        device = pending.pop()
        if device.get("rm") in (True, "1", 1) or device.get("tran") in ("usb", "mmc"):
            return source, True
        pending.extend(device.get("children", []))
    return source, False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the real Linux sysfs; not on Windows")
@pytest.mark.skipif(not (shutil.which("findmnt") and shutil.which("lsblk")), reason="needs util-linux (findmnt, lsblk; not on Windows)")
def test_working_directory_of_this_machine():
    cwd = os.getcwd()
    source, removable_per_lsblk = _cwd_source_and_removable_per_util_linux(cwd)
    if removable_per_lsblk:
        pytest.skip(f"the working directory is on removable media here ({source})")

    detection = detect(cwd)

    assert detection.removable is False
    if source.startswith("/dev/"):
        assert detection.detail.startswith(f"{cwd} is on {os.path.realpath(source)} (disk ")
    else:
        assert detection.detail.startswith(f"{cwd} is on a virtual filesystem (")


# ---------------------------------------------------------------- Windows

class FakeKernel32:
    """Answers for a volume E:\\ the way _WindowsApi would, or raises what it is told to."""

    def __init__(self, drive_type: int, bus_type: int | None = None, *,
                 volume_error: OSError | None = None, bus_error: OSError | None = None):
        self.drive_type = drive_type
        self.bus_type = bus_type
        self.volume_error = volume_error
        self.bus_error = bus_error

    def GetVolumePathNameW(self, path: str) -> str:
        if self.volume_error:
            raise self.volume_error
        assert path == "E:\\keys"
        return "E:\\"

    def GetDriveTypeW(self, root: str) -> int:
        assert root == "E:\\"
        return self.drive_type

    def storage_bus_type(self, root: str) -> int | None:
        assert root == "E:\\"
        if self.bus_error:
            raise self.bus_error
        return self.bus_type


def windows(api: FakeKernel32) -> Detection:
    return detect("E:\\keys", platform="win32", windows_api=api)


def test_windows_removable_drive():
    assert windows(FakeKernel32(2)) == Detection(True, "E:\\keys is on E:\\ (drive type removable)")


@pytest.mark.parametrize("bus_type, bus_name", [(7, "USB"), (12, "SD"), (13, "MMC")])
def test_windows_fixed_drive_on_usb_sd_or_mmc_bus_is_removable(bus_type, bus_name):
    assert windows(FakeKernel32(3, bus_type)) == Detection(
        True, f"E:\\keys is on E:\\ (drive type fixed, bus {bus_name}: removable media that reports fixed)"
    )


def test_windows_fixed_sata_drive_is_not_removable():
    assert windows(FakeKernel32(3, 11)) == Detection(False, "E:\\keys is on E:\\ (drive type fixed, bus SATA)")


def test_windows_fixed_drive_with_no_bus_answer_is_not_removable():
    assert windows(FakeKernel32(3, None)) == Detection(False, "E:\\keys is on E:\\ (drive type fixed, bus unknown)")


def test_windows_remote_drive_is_not_removable():
    assert windows(FakeKernel32(4)) == Detection(False, "E:\\keys is on E:\\ (drive type remote)")


def test_windows_cdrom_is_not_removable():
    assert windows(FakeKernel32(5)) == Detection(False, "E:\\keys is on E:\\ (drive type CD-ROM)")


def test_windows_volume_lookup_failure_cannot_tell():
    api = FakeKernel32(2, volume_error=OSError(21, "The device is not ready"))

    assert windows(api) == Detection(
        False, "cannot tell whether E:\\keys is on removable media: [Errno 21] The device is not ready"
    )


def test_windows_bus_query_failure_is_not_removable():
    api = FakeKernel32(3, bus_error=OSError(5, "Access is denied"))

    assert windows(api) == Detection(
        False, "E:\\keys is on E:\\ (drive type fixed, bus unknown: [Errno 5] Access is denied)"
    )


# ---------------------------------------------------------------- issue 13: a mount's source is not evidence

@pytest.fixture
def tmpfs_named_like_a_stick(tmp_path):
    """A real tmpfs mounted with the source string /dev/sdb1, as `mount -t tmpfs /dev/sdb1 DIR` allows."""
    mountpoint = tmp_path / "usb"
    mountpoint.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "/dev/sdb1", str(mountpoint)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount permission): {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux mounts (not on Windows or macOS)")
def test_a_tmpfs_with_a_device_like_source_is_not_removable(tmpfs_named_like_a_stick, sysfs):
    add_usb_stick(sysfs)    # the device the source string names is a USB stick
    detection = detect(tmpfs_named_like_a_stick, sysfs_root=str(sysfs))
    assert detection.removable is False
    assert "tmpfs" in detection.detail and "no block device" in detection.detail


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux mounts (not on Windows or macOS)")
def test_detect_fd_judges_the_open_directory(tmpfs_named_like_a_stick, sysfs):
    from cssadmin.removable import detect_fd
    add_usb_stick(sysfs)
    descriptor = os.open(tmpfs_named_like_a_stick, os.O_RDONLY)
    try:
        assert detect_fd(descriptor, "/media/usb", sysfs_root=str(sysfs)) == Detection(
            False, "/media/usb is on a virtual filesystem (tmpfs, source /dev/sdb1) with no block device")
    finally:
        os.close(descriptor)


@pytest.mark.parametrize("fstype", ["fuse.sshfs", "nfs4", "cifs", "overlay", "9p", "virtiofs", "squashfs"])
def test_non_block_filesystems_naming_a_usb_partition_are_not_removable(sysfs, tmp_path, fstype):
    add_usb_stick(sysfs)
    proc = tmp_path / "proc"
    write_mountinfo(proc, f"88 27 0:40 / /media/usb rw,relatime - {fstype} /dev/sdb1 rw")
    assert linux(os.makedev(0, 40), sysfs, proc).removable is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux mounts (not on Windows or macOS)")
def test_require_removable_refuses_the_disguised_tmpfs(tmpfs_named_like_a_stick, tmp_path):
    from keks import rsa_key, write_spki
    kek = write_spki(rsa_key(4096), tmp_path / "WrappingKey.bin")
    result = subprocess.run([sys.executable, "-m", "cssadmin", "--json", "aws", "k", str(kek), "RSAES_OAEP_SHA_1",
                             "--out-dir", str(tmpfs_named_like_a_stick), "--require-removable", "--no-audit"],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert result.returncode == 7
    assert json.loads(result.stdout)["error"]["code"] == "NOT_REMOVABLE"
