//! What one device holds beyond its template, kept sparse: sorted vectors, allocated on first
//! use, dropped again when empty.

use std::mem::size_of;

use crate::model::generator::WalkState;
use crate::model::{Path, Value};

/// A value the server (or provisioning) wrote over the template's.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Written {
    Single(Value),
    /// The full list of resource instances; `None` keeps the template's generator for that id.
    Multi(Vec<(u16, Option<Value>)>),
    /// Removed by a Replace on its instance.
    Absent,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Diff {
    /// By (object, instance, resource).
    values: Vec<([u16; 3], Written)>,
    /// By (object, instance): `true` created (from the object's prototype), `false` deleted.
    instances: Vec<([u16; 2], bool)>,
    /// Random walk caches by (object, instance, resource, resource instance).
    walks: Vec<([u16; 4], WalkState)>,
}

fn upsert<K: Ord + Copy, V>(list: &mut Vec<(K, V)>, key: K, value: V) {
    match list.binary_search_by_key(&key, |(k, _)| *k) {
        Ok(i) => list[i].1 = value,
        Err(i) => list.insert(i, (key, value)),
    }
}

fn get<K: Ord + Copy, V>(list: &[(K, V)], key: K) -> Option<&V> {
    list.binary_search_by_key(&key, |(k, _)| *k)
        .ok()
        .map(|i| &list[i].1)
}

/// Path ids padded to four, as a walk key.
pub(super) fn key4(path: &Path) -> [u16; 4] {
    let mut key = [0; 4];
    key[..path.len()].copy_from_slice(path.ids());
    key
}

impl Diff {
    pub(super) fn shrink_to_fit(&mut self) {
        self.values.shrink_to_fit();
        self.instances.shrink_to_fit();
        self.walks.shrink_to_fit();
    }

    pub(super) fn is_empty(&self) -> bool {
        self.values.is_empty() && self.instances.is_empty() && self.walks.is_empty()
    }

    pub(super) fn written(&self, key: [u16; 3]) -> Option<&Written> {
        get(&self.values, key)
    }

    pub(super) fn set_written(&mut self, key: [u16; 3], value: Written) {
        upsert(&mut self.values, key, value);
    }

    /// Written resource ids of an instance.
    pub(super) fn written_in(&self, o: u16, i: u16) -> impl Iterator<Item = (u16, &Written)> {
        self.values
            .iter()
            .filter(move |(k, _)| k[0] == o && k[1] == i)
            .map(|(k, w)| (k[2], w))
    }

    pub(super) fn instance(&self, o: u16, i: u16) -> Option<bool> {
        get(&self.instances, [o, i]).copied()
    }

    pub(super) fn instances_of(&self, o: u16) -> impl Iterator<Item = (u16, bool)> {
        self.instances
            .iter()
            .filter(move |(k, _)| k[0] == o)
            .map(|(k, created)| (k[1], *created))
    }

    pub(super) fn set_instance(&mut self, o: u16, i: u16, created: Option<bool>) {
        match created {
            Some(c) => upsert(&mut self.instances, [o, i], c),
            None => self.instances.retain(|(k, _)| *k != [o, i]),
        }
    }

    /// Forgets everything stored under an instance (values and walks).
    pub(super) fn clear_instance(&mut self, o: u16, i: u16) {
        self.values.retain(|(k, _)| k[..2] != [o, i]);
        self.walks.retain(|(k, _)| k[..2] != [o, i]);
    }

    pub(super) fn walk(&self, key: [u16; 4]) -> Option<WalkState> {
        get(&self.walks, key).copied()
    }

    pub(super) fn set_walk(&mut self, key: [u16; 4], state: WalkState) {
        upsert(&mut self.walks, key, state);
    }

    /// Heap bytes, by capacity.
    pub(super) fn heap_bytes(&self) -> usize {
        let values: usize = self
            .values
            .iter()
            .map(|(_, w)| match w {
                Written::Single(v) => value_heap(v),
                Written::Multi(list) => {
                    list.capacity() * size_of::<(u16, Option<Value>)>()
                        + list
                            .iter()
                            .flat_map(|(_, v)| v)
                            .map(value_heap)
                            .sum::<usize>()
                }
                Written::Absent => 0,
            })
            .sum();
        size_of::<Diff>()
            + self.values.capacity() * size_of::<([u16; 3], Written)>()
            + values
            + self.instances.capacity() * size_of::<([u16; 2], bool)>()
            + self.walks.capacity() * size_of::<([u16; 4], WalkState)>()
    }
}

fn value_heap(v: &Value) -> usize {
    match v {
        Value::String(s) | Value::Corelnk(s) => s.capacity(),
        Value::Opaque(b) => b.capacity(),
        _ => 0,
    }
}
