//! The cluster as a DataFusion catalog: every database a schema, every table a
//! [`SealedTable`].
//!
//! A catalog either reads each table at the latest commit when the query is planned
//! ([`SealstoreCatalog::latest`], for a long-lived `SessionContext`) or pins one snapshot per
//! database for its whole life ([`SealstoreCatalog::pinned`], one per statement, as
//! [`crate::Engine`] does): then every table a statement reads, joins included, is read at one
//! commit.
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemTable, SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, exec_err};
use parking_lot::Mutex;
use sealstore_cluster::{Cluster, Database, ReadSnapshot};

use crate::table::SealedTable;
use crate::types::storable_schema;
use crate::write::{WriteTarget, write_batches};
use crate::{Error, Result};

/// Every database of a cluster.
#[derive(Debug)]
pub struct SealstoreCatalog {
    cluster: Arc<Cluster>,
    /// `Some`: snapshots pinned on first use, one per database.
    pinned: Option<Arc<Mutex<HashMap<String, ReadSnapshot>>>>,
}

impl SealstoreCatalog {
    /// Each table read at the latest commit when a query plans it.
    pub fn latest(cluster: Arc<Cluster>) -> Self {
        Self { cluster, pinned: None }
    }

    /// Each database read at one commit (the latest when first used) for the catalog's life.
    pub fn pinned(cluster: Arc<Cluster>) -> Self {
        Self {
            cluster,
            pinned: Some(Arc::default()),
        }
    }
}

impl CatalogProvider for SealstoreCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.cluster.databases().unwrap_or_default()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let db = self.cluster.database(name).ok()?;
        Some(Arc::new(DatabaseSchema {
            db,
            pinned: self.pinned.clone(),
        }))
    }

    /// `CREATE SCHEMA name` creates a database.
    fn register_schema(
        &self,
        name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        self.cluster.create_database(name).map_err(Error::from)?;
        Ok(None)
    }
}

/// One database.
#[derive(Debug)]
pub struct DatabaseSchema {
    db: Arc<Database>,
    pinned: Option<Arc<Mutex<HashMap<String, ReadSnapshot>>>>,
}

impl DatabaseSchema {
    /// The snapshot this schema reads.
    fn snapshot(&self) -> ReadSnapshot {
        match &self.pinned {
            Some(pins) => pins
                .lock()
                .entry(self.db.name().to_owned())
                .or_insert_with(|| self.db.begin_read())
                .clone(),
            None => self.db.begin_read(),
        }
    }

    /// Forgets the pinned snapshot after this statement's own commit, so what follows in the
    /// same catalog sees it.
    fn unpin(&self) {
        if let Some(pins) = &self.pinned {
            pins.lock().remove(self.db.name());
        }
    }

    fn create_from_memtable(&self, name: &str, table: &dyn TableProvider) -> Result<()> {
        let Some(mem) = table.downcast_ref::<MemTable>() else {
            return Err(Error::Unsupported(format!(
                "only tables created by CREATE TABLE can be added to a sealstore database (`{name}`)"
            )));
        };
        let schema = storable_schema(&table.schema())?;
        let mut batches = Vec::new();
        for partition in &mem.batches {
            let guard = partition
                .try_read()
                .map_err(|_| Error::Unsupported(format!("the rows of `{name}` are being written")))?;
            batches.extend(guard.iter().cloned());
        }
        let target = WriteTarget::Create {
            table: name.to_owned(),
            schema,
            replace: false,
        };
        write_batches(&self.db, &target, batches)?;
        Ok(())
    }
}

#[async_trait]
impl SchemaProvider for DatabaseSchema {
    fn table_names(&self) -> Vec<String> {
        self.snapshot().tables()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let snapshot = self.snapshot();
        if !snapshot.tables().iter().any(|t| t == name) {
            return Ok(None);
        }
        Ok(Some(Arc::new(SealedTable::new(self.db.clone(), snapshot, name)?)))
    }

    /// `CREATE TABLE` through a plain `SessionContext`: the statement's rows, already computed
    /// by DataFusion, become the new table in one commit.
    fn register_table(&self, name: String, table: Arc<dyn TableProvider>) -> DfResult<Option<Arc<dyn TableProvider>>> {
        self.create_from_memtable(&name, table.as_ref())?;
        self.unpin();
        Ok(None)
    }

    /// `DROP TABLE`: the crypto-shredding drop, one commit.
    fn deregister_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let snapshot = self.snapshot();
        if !snapshot.tables().iter().any(|t| t == name) {
            return exec_err!("no table `{name}` in database `{}`", self.db.name());
        }
        let table: Arc<dyn TableProvider> = Arc::new(SealedTable::new(self.db.clone(), snapshot, name)?);
        self.db.drop_table(name).map_err(Error::from)?;
        self.unpin();
        Ok(Some(table))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.snapshot().tables().iter().any(|t| t == name)
    }
}
