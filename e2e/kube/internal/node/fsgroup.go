package node

import (
	"io/fs"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
)

// ownsVolume: the volume types whose ownership the kubelet (or, for
// claims, a CSI driver with an fsGroup policy, as block storage has) sets
// to the pod's fsGroup. hostPath volumes keep theirs, as on a kubelet.
func ownsVolume(v v1.Volume) bool {
	vs := v.VolumeSource
	return vs.EmptyDir != nil || vs.ConfigMap != nil || vs.Secret != nil || vs.DownwardAPI != nil ||
		vs.Projected != nil || vs.PersistentVolumeClaim != nil
}

// ApplyFSGroup gives a volume to the pod's fsGroup the way the kubelet's
// SetVolumeOwnership does: group ownership of every file, group read (and
// write unless read-only) permission, setgid on directories so new files
// inherit the group.
func ApplyFSGroup(root string, gid int64, readOnly bool) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if err := os.Lchown(path, -1, int(gid)); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode()
		perm := mode.Perm() | 0o040
		if !readOnly {
			perm |= 0o020
		}
		if d.IsDir() {
			perm |= 0o010
			return os.Chmod(path, perm|os.ModeSetgid)
		}
		return os.Chmod(path, perm)
	})
}
