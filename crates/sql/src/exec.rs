//! The scan operator: one DataFusion partition per part of the scan (a slice, or a row range of
//! one when there are fewer slices than threads), each streaming that part's blocks
//! (pruned by zone map, then read, authenticated, decrypted and filtered) at one snapshot.
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_schema::{Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result as DfResult, Statistics, internal_err};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions,
};
use futures::Stream;
use sealstore_cluster::{ClusterScan, Predicate, ScanPart, ScanStats, SliceScanIter};

use crate::Error;

/// Scans one table of one snapshot.
#[derive(Debug)]
pub struct SealedScanExec {
    table: String,
    scan: ClusterScan,
    parts: Vec<ScanPart>,
    /// Output schema (the projection).
    schema: SchemaRef,
    /// True when the query needs no column (`COUNT(*)`): the first column is read for row counts.
    no_columns: bool,
    predicates: Vec<Predicate>,
    limit: Option<usize>,
    /// Statistics of each partition, and of all of them.
    partition_stats: Vec<Arc<Statistics>>,
    total_stats: Arc<Statistics>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

/// What the exec is built from.
#[derive(Debug)]
pub struct ScanPlan {
    pub table: String,
    pub scan: ClusterScan,
    pub parts: Vec<ScanPart>,
    pub schema: SchemaRef,
    pub no_columns: bool,
    pub predicates: Vec<Predicate>,
    pub limit: Option<usize>,
    pub partition_stats: Vec<Statistics>,
    pub total_stats: Statistics,
}

impl SealedScanExec {
    pub fn new(plan: ScanPlan) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(plan.schema.clone()),
            Partitioning::UnknownPartitioning(plan.parts.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            table: plan.table,
            scan: plan.scan,
            parts: plan.parts,
            schema: plan.schema,
            no_columns: plan.no_columns,
            predicates: plan.predicates,
            limit: plan.limit,
            partition_stats: plan.partition_stats.into_iter().map(Arc::new).collect(),
            total_stats: Arc::new(plan.total_stats),
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for SealedScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "SealedScanExec: table={}, parts={}", self.table, self.parts.len())?;
                let cols: Vec<&str> = self.schema.fields().iter().map(|f| f.name().as_str()).collect();
                write!(f, ", projection=[{}]", cols.join(", "))?;
                if !self.predicates.is_empty() {
                    let preds: Vec<String> = self.predicates.iter().map(ToString::to_string).collect();
                    write!(f, ", predicates=[{}]", preds.join(" AND "))?;
                }
                if let Some(limit) = self.limit {
                    write!(f, ", limit={limit}")?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => write!(f, "table={}", self.table),
        }
    }
}

impl ExecutionPlan for SealedScanExec {
    fn name(&self) -> &str {
        "SealedScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        let Some(part) = self.parts.get(partition) else {
            return internal_err!("SealedScanExec has no partition {partition}");
        };
        let stats = Arc::new(ScanStats::default());
        let iter = self
            .scan
            .clone()
            .stats(stats.clone())
            .run_part(part)
            .map_err(Error::from)?;
        let metric = |name: &'static str| MetricBuilder::new(&self.metrics).counter(name, partition);
        Ok(Box::pin(SliceStream {
            iter: Some(iter),
            schema: self.schema.clone(),
            no_columns: self.no_columns,
            remaining: self.limit,
            stats,
            reported: Reported::default(),
            blocks_total: metric("blocks_total"),
            blocks_pruned: metric("blocks_pruned"),
            blocks_decrypted: metric("blocks_decrypted"),
            bytes_read: metric("bytes_read"),
            baseline: BaselineMetrics::new(&self.metrics, partition),
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn statistics_from_inputs(&self, _inputs: &[Arc<Statistics>], args: &StatisticsArgs) -> DfResult<Arc<Statistics>> {
        Ok(match args.partition() {
            Some(p) => match self.partition_stats.get(p) {
                Some(s) => s.clone(),
                None => return internal_err!("SealedScanExec has no partition {p}"),
            },
            None => self.total_stats.clone(),
        })
    }
}

/// Counter values already added to the metrics.
#[derive(Debug, Default)]
struct Reported {
    total: u64,
    read: u64,
    bytes: u64,
}

/// One slice's batches as a DataFusion stream. Blocks are decrypted on the polling thread, as
/// DataFusion's own file readers decode on theirs.
struct SliceStream {
    iter: Option<SliceScanIter>,
    schema: SchemaRef,
    no_columns: bool,
    remaining: Option<usize>,
    stats: Arc<ScanStats>,
    reported: Reported,
    blocks_total: Count,
    blocks_pruned: Count,
    blocks_decrypted: Count,
    bytes_read: Count,
    baseline: BaselineMetrics,
}

impl SliceStream {
    fn report(&mut self) {
        let c = self.stats.counts();
        let total = c.blocks_total.saturating_sub(self.reported.total);
        let read = c.blocks_read.saturating_sub(self.reported.read);
        self.blocks_total.add(total as usize);
        self.blocks_decrypted.add(read as usize);
        self.bytes_read
            .add(c.bytes_read.saturating_sub(self.reported.bytes) as usize);
        self.reported = Reported {
            total: c.blocks_total,
            read: c.blocks_read,
            bytes: c.bytes_read,
        };
        // Pruned = planned but never read; final once the scan ends.
        let pruned = c.blocks_total.saturating_sub(c.blocks_read) as usize;
        let shown = self.blocks_pruned.value();
        if pruned > shown {
            self.blocks_pruned.add(pruned - shown);
        }
    }

    fn next_batch(&mut self) -> Option<DfResult<RecordBatch>> {
        if self.remaining == Some(0) {
            self.iter = None;
        }
        let item = self.iter.as_mut()?.next();
        let Some(item) = item else {
            self.iter = None;
            return None;
        };
        let batch = match item {
            Ok(b) => b,
            Err(e) => {
                self.iter = None;
                return Some(Err(Error::from(e).into()));
            }
        };
        let batch = match self.remaining.as_mut() {
            Some(left) => {
                let take = batch.num_rows().min(*left);
                *left -= take;
                batch.slice(0, take)
            }
            None => batch,
        };
        Some(if self.no_columns {
            RecordBatch::try_new_with_options(
                Arc::new(Schema::empty()),
                vec![],
                &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
            )
            .map_err(Into::into)
        } else {
            Ok(batch)
        })
    }
}

impl Stream for SliceStream {
    type Item = DfResult<RecordBatch>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let elapsed = this.baseline.elapsed_compute().clone();
        let timer = elapsed.timer();
        let next = this.next_batch();
        timer.done();
        this.report();
        this.baseline.record_poll(Poll::Ready(next))
    }
}

impl RecordBatchStream for SliceStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
