//! Pod volumes (Secret, ConfigMap, emptyDir, downward API, projected, hostPath) and the
//! container mounts they give.
