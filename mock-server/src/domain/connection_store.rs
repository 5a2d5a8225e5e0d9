//! The connections of a world: kept in creation order (lists answer in it) and found by
//! environment and id in constant time, so a GET or PUT costs the same with a thousand
//! connections as with a million.

use super::connection::{Caller, Connection, ConnectionId};
use super::ids::EnvironmentId;
use indexmap::IndexMap;
use std::sync::Arc;
use uuid::Uuid;

/// Connections by environment and id (either id form: the GUID is the key). Each connection
/// is boxed: the map's table then holds a pointer per connection, so growing it past a
/// hundred thousand connections copies megabytes, not a copy of every connection.
///
/// The callers connections were created by are kept once each and shared: a creator's
/// principal, names and UPN would otherwise be copied into every connection it makes.
#[derive(Debug, Clone, Default)]
pub struct Connections {
    by_key: IndexMap<(EnvironmentId, Uuid), Box<Connection>>,
    creators: Vec<Arc<Caller>>,
}

impl Connections {
    /// `caller` as a connection's creator: the one already kept when it is the same.
    pub fn creator(&mut self, caller: &Caller) -> Arc<Caller> {
        if let Some(kept) = self.creators.iter().find(|c| ***c == *caller) {
            return kept.clone();
        }
        // A principal seen again with other names (a renamed user) replaces its old entry.
        self.creators.retain(|c| c.principal != caller.principal || Arc::strong_count(c) > 1);
        let kept = Arc::new(caller.clone());
        self.creators.push(kept.clone());
        kept
    }

    /// The connection `id` of `environment`.
    pub fn get(&self, environment: &EnvironmentId, id: &ConnectionId) -> Option<&Connection> {
        self.by_key.get(&(environment.clone(), id.uuid())).map(|c| &**c)
    }

    /// The same, to change it.
    pub fn get_mut(&mut self, environment: &EnvironmentId, id: &ConnectionId) -> Option<&mut Connection> {
        self.by_key.get_mut(&(environment.clone(), id.uuid())).map(|c| &mut **c)
    }

    /// Adds a new connection (after every other) and returns it.
    pub fn insert(&mut self, c: Connection) -> &Connection {
        let key = (c.environment.clone(), c.id.uuid());
        let entry = self.by_key.entry(key);
        let index = entry.index();
        entry.or_insert(Box::new(c));
        &self.by_key[index]
    }

    /// Removes a connection, keeping the others in order.
    pub fn remove(&mut self, environment: &EnvironmentId, id: &ConnectionId) -> Option<Connection> {
        self.by_key.shift_remove(&(environment.clone(), id.uuid())).map(|c| *c)
    }

    /// Every connection, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Connection> {
        self.by_key.values().map(|c| &**c)
    }

    /// Every connection, to change them.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Connection> {
        self.by_key.values_mut().map(|c| &mut **c)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

impl<'a> IntoIterator for &'a Connections {
    type Item = &'a Connection;
    type IntoIter = std::iter::Map<
        indexmap::map::Values<'a, (EnvironmentId, Uuid), Box<Connection>>,
        fn(&'a Box<Connection>) -> &'a Connection,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.by_key.values().map(|c| &**c)
    }
}
