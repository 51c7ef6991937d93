//! Sessions over a cluster: configuration (no spilling, a memory limit), registration on a
//! caller's `SessionContext`, and [`Engine`], which runs each statement at one snapshot and
//! makes every write statement one sealed commit.
use std::sync::Arc;

use datafusion::catalog::{CatalogProvider, MemoryCatalogProviderList};
use datafusion::dataframe::DataFrame;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::{CreateMemoryTable, DdlStatement, LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::DFParser;
use sealstore_cluster::Cluster;

use crate::catalog::SealstoreCatalog;
use crate::types::storable_schema;
use crate::write::{WriteTarget, write_stream};
use crate::{Error, Result};

/// The catalog name sealstore registers under in an [`Engine`]'s sessions.
pub const CATALOG: &str = "sealstore";

/// Default memory limit of a session: 2 GiB. Operators that need more fail with "Resources
/// exhausted" instead of spilling (spill files would hold plaintext).
pub const DEFAULT_MEMORY_LIMIT: usize = 2 << 30;

/// How an [`Engine`] runs queries.
#[derive(Debug, Clone)]
pub struct SqlOptions {
    /// The database unqualified table names resolve in.
    pub database: String,
    /// Bytes of memory all operators of a query may hold together.
    pub memory_limit: usize,
    /// Partitions DataFusion plans for (its parallelism); 0 = the cluster's worker threads.
    pub target_partitions: usize,
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self {
            database: sealstore_cluster::DEFAULT_DATABASE.to_owned(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            target_partitions: 0,
        }
    }
}

impl SqlOptions {
    /// Options with `database` as the default schema.
    pub fn database(database: &str) -> Self {
        Self {
            database: database.to_owned(),
            ..Self::default()
        }
    }

    /// The same options with another memory limit.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }
}

/// A runtime that never writes a temporary file: DataFusion's disk manager is disabled, so
/// an operator that would spill fails instead, and its memory is bounded by `memory_limit`.
pub fn runtime_env(memory_limit: usize) -> Result<Arc<RuntimeEnv>> {
    Ok(RuntimeEnvBuilder::new()
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
        .with_memory_limit(memory_limit, 1.0)
        .build_arc()?)
}

/// The session configuration sealstore runs with.
pub fn session_config(cluster: &Cluster, options: &SqlOptions) -> SessionConfig {
    let partitions = match options.target_partitions {
        0 => cluster.threads().max(1),
        n => n,
    };
    let mut config = SessionConfig::new()
        .with_create_default_catalog_and_schema(false)
        .with_default_catalog_and_schema(CATALOG, &options.database)
        .with_information_schema(true)
        .with_target_partitions(partitions);
    // Plain strings: sealstore stores Utf8, and CREATE TABLE should not pick view types.
    config.options_mut().sql_parser.map_string_types_to_utf8view = false;
    config
}

/// Registers the cluster on `ctx` as its default catalog (every database a schema:
/// `SELECT … FROM dev.lineitem`). Each table is read at the latest commit when a query plans
/// it; use [`Engine`] for one snapshot per statement. Configure `ctx` with [`runtime_env`] so
/// nothing spills to disk in plaintext.
pub fn register(ctx: &SessionContext, cluster: Arc<Cluster>) -> Option<Arc<dyn CatalogProvider>> {
    let name = ctx.state().config().options().catalog.default_catalog.clone();
    ctx.register_catalog(name, Arc::new(SealstoreCatalog::latest(cluster)))
}

/// Runs SQL statements over a cluster: each statement reads one snapshot per database, and
/// each write (`INSERT`, `CREATE TABLE [AS]`, `CREATE OR REPLACE`, `DROP TABLE`) is one sealed
/// commit — a statement that fails commits nothing.
pub struct Engine {
    cluster: Arc<Cluster>,
    base: SessionContext,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with `options` (spilling disabled, memory bounded).
    pub fn new(cluster: Arc<Cluster>, options: SqlOptions) -> Result<Self> {
        cluster.database(&options.database)?;
        let state = SessionStateBuilder::new()
            .with_config(session_config(&cluster, &options))
            .with_runtime_env(runtime_env(options.memory_limit)?)
            .with_default_features()
            .build();
        Ok(Self {
            cluster,
            base: SessionContext::new_with_state(state),
        })
    }

    /// The cluster.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// A session for one statement: the cluster's catalog with each database pinned at the
    /// commit that is latest when the statement first reads it.
    pub fn context(&self) -> SessionContext {
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        let state = SessionStateBuilder::new_from_existing(self.base.state())
            .with_catalog_list(catalogs)
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_catalog(CATALOG, Arc::new(SealstoreCatalog::pinned(self.cluster.clone())));
        ctx
    }

    /// Splits a script into its statements (each returned as SQL text).
    pub fn split(sql: &str) -> Result<Vec<String>> {
        Ok(DFParser::parse_sql(sql)?.into_iter().map(|s| s.to_string()).collect())
    }

    /// Plans one statement. Writes run to completion here (their result is the row count or
    /// nothing); a query is returned as a `DataFrame` to collect or stream.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        let ctx = self.context();
        let plan = ctx.state().create_logical_plan(sql).await?;
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(cmd)) => self.create_table(&ctx, cmd).await,
            // DataFusion runs INSERT when its result is read; here it commits before `sql`
            // returns, and the result (the row count) is kept in memory.
            plan @ LogicalPlan::Dml(_) => {
                let count = ctx.execute_logical_plan(plan).await?.collect().await?;
                Ok(ctx.read_batches(count)?)
            }
            plan => Ok(ctx.execute_logical_plan(plan).await?),
        }
    }

    /// `CREATE [OR REPLACE] TABLE t (…)` or `… AS SELECT`: the table (and the old one's drop,
    /// for OR REPLACE) and all its rows in one commit, the rows streamed, never materialised.
    async fn create_table(&self, ctx: &SessionContext, cmd: CreateMemoryTable) -> Result<DataFrame> {
        let state = ctx.state();
        let defaults = &state.config().options().catalog;
        let name = cmd
            .name
            .clone()
            .resolve(&defaults.default_catalog, &defaults.default_schema);
        if name.catalog.as_ref() != CATALOG {
            return Ok(ctx
                .execute_logical_plan(LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(cmd)))
                .await?);
        }
        if cmd.temporary {
            return Err(Error::Unsupported("temporary tables are not supported".into()));
        }
        if !cmd.constraints.is_empty() || !cmd.column_defaults.is_empty() {
            return Err(Error::Unsupported(
                "column constraints and defaults are not supported by sealstore tables".into(),
            ));
        }
        let db = self.cluster.database(&name.schema)?;
        let table = name.table.to_string();
        let exists = db.begin_read().tables().contains(&table);
        let empty = DataFrame::new(ctx.state(), LogicalPlanBuilder::empty(false).build()?);
        match (cmd.if_not_exists, cmd.or_replace, exists) {
            (true, true, _) => {
                return Err(Error::Unsupported(
                    "IF NOT EXISTS cannot be combined with OR REPLACE".into(),
                ));
            }
            (true, false, true) => return Ok(empty),
            (false, false, true) => return Err(sealstore_cluster::Error::TableExists(table).into()),
            _ => {}
        }
        let schema = storable_schema(cmd.input.schema().as_arrow())?;
        let input = ctx.execute_logical_plan(cmd.input.as_ref().clone()).await?;
        let stream = input.execute_stream().await?;
        let target = WriteTarget::Create {
            table,
            schema,
            replace: cmd.or_replace,
        };
        write_stream(db, target, stream).await?;
        Ok(empty)
    }
}
