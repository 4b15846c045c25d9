package container

import "testing"

func TestMountinfoRootIsInitramfs(t *testing.T) {
	for _, tc := range []struct {
		name, mountinfo string
		want            bool
	}{
		{"initramfs", "1 1 0:2 / / rw - rootfs rootfs rw,size=1002436k\n15 1 0:4 / /proc rw - proc proc rw\n", true},
		{"disk root", "27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n22 27 0:21 / /proc rw - proc proc rw\n", false},
		{"switched root", "1 1 0:2 / / rw - rootfs rootfs rw\n30 1 0:30 / / rw - tmpfs tmpfs rw\n", false},
		{"no root line", "22 27 0:21 / /proc rw - proc proc rw\n", false},
		{"garbage", "nonsense\n\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mountinfoRootIsInitramfs(tc.mountinfo); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if rootIsInitramfs() {
		t.Error("this host's / is reported as an initramfs")
	}
}
