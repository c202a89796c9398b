use std::fmt;
use std::str::FromStr;

/// An LWM2M path: `/`, `/o`, `/o/i`, `/o/i/r` or `/o/i/r/ri`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Path {
    ids: [u16; 4],
    len: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("path has more than 4 segments")]
    TooLong,
    #[error("path segment {0:?} is not an id from 0 to 65534")]
    BadSegment(String),
}

impl Path {
    pub const ROOT: Path = Path {
        ids: [0; 4],
        len: 0,
    };

    pub fn object(object: u16) -> Self {
        Path {
            ids: [object, 0, 0, 0],
            len: 1,
        }
    }
    pub fn instance(object: u16, instance: u16) -> Self {
        Path {
            ids: [object, instance, 0, 0],
            len: 2,
        }
    }
    pub fn resource(object: u16, instance: u16, resource: u16) -> Self {
        Path {
            ids: [object, instance, resource, 0],
            len: 3,
        }
    }
    pub fn resource_instance(object: u16, instance: u16, resource: u16, ri: u16) -> Self {
        Path {
            ids: [object, instance, resource, ri],
            len: 4,
        }
    }

    /// Builds a path from up to four ids.
    pub fn from_ids(ids: &[u16]) -> Result<Self, PathError> {
        if ids.len() > 4 {
            return Err(PathError::TooLong);
        }
        let mut path = Path::ROOT;
        path.ids[..ids.len()].copy_from_slice(ids);
        path.len = ids.len() as u8;
        Ok(path)
    }

    /// Parses CoAP Uri-Path segments (`["3", "0", "13"]`).
    pub fn from_segments<S: AsRef<str>>(segments: &[S]) -> Result<Self, PathError> {
        let segments: Vec<&str> = segments
            .iter()
            .map(AsRef::as_ref)
            .filter(|s| !s.is_empty())
            .collect();
        if segments.len() > 4 {
            return Err(PathError::TooLong);
        }
        let mut ids = [0u16; 4];
        for (slot, segment) in ids.iter_mut().zip(&segments) {
            *slot = match segment.parse::<u16>() {
                Ok(id) if id != u16::MAX => id,
                _ => return Err(PathError::BadSegment((*segment).to_string())),
            };
        }
        Ok(Path {
            ids,
            len: segments.len() as u8,
        })
    }

    /// The ids present, from object down.
    pub fn ids(&self) -> &[u16] {
        &self.ids[..usize::from(self.len)]
    }
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
    /// True for the root path (no segments).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn is_root(&self) -> bool {
        self.len == 0
    }
    pub fn object_id(&self) -> Option<u16> {
        self.ids().first().copied()
    }
    pub fn instance_id(&self) -> Option<u16> {
        self.ids().get(1).copied()
    }
    pub fn resource_id(&self) -> Option<u16> {
        self.ids().get(2).copied()
    }
    pub fn resource_instance_id(&self) -> Option<u16> {
        self.ids().get(3).copied()
    }

    /// This path with one more segment, or `None` at resource-instance depth.
    pub fn child(&self, id: u16) -> Option<Path> {
        let mut ids = self.ids().to_vec();
        ids.push(id);
        Path::from_ids(&ids).ok()
    }

    /// This path without its last segment (the root stays the root).
    #[must_use]
    pub fn parent(&self) -> Path {
        let mut parent = *self;
        if parent.len > 0 {
            parent.len -= 1;
            parent.ids[usize::from(parent.len)] = 0;
        }
        parent
    }

    /// True when `self` is `other` or lies under it.
    pub fn starts_with(&self, other: &Path) -> bool {
        other.len <= self.len
            && self.ids[..usize::from(other.len)] == other.ids[..usize::from(other.len)]
    }
}

impl FromStr for Path {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, PathError> {
        let segments: Vec<&str> = s.split('/').collect();
        Path::from_segments(&segments)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 {
            return f.write_str("/");
        }
        for id in self.ids() {
            write!(f, "/{id}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Path({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let path: Path = "/3303/0/5700".parse().unwrap();
        assert_eq!(path, Path::resource(3303, 0, 5700));
        assert_eq!(path.to_string(), "/3303/0/5700");
        assert_eq!("/".parse::<Path>().unwrap(), Path::ROOT);
        assert_eq!(Path::ROOT.to_string(), "/");
        assert!("/1/2/3/4/5".parse::<Path>().is_err());
        assert!("/x".parse::<Path>().is_err());
        assert!("/65535".parse::<Path>().is_err());
    }

    #[test]
    fn relations() {
        let res = Path::resource(3, 0, 13);
        assert!(res.starts_with(&Path::instance(3, 0)));
        assert!(res.starts_with(&Path::ROOT));
        assert!(!res.starts_with(&Path::instance(3, 1)));
        assert_eq!(res.parent(), Path::instance(3, 0));
        assert_eq!(Path::instance(3, 0).child(13), Some(res));
        assert_eq!(Path::resource_instance(3, 0, 6, 1).child(0), None);
    }
}
