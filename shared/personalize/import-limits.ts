/** Bulk-import limits the export respects (FACTS §4c–4d). */
export const IMPORT_LIMITS = {
  /** FACTS §4c: an import job needs at least 1000 interaction records (FULL or INCREMENTAL). */
  minInteractionsPerJob: 1000,
  /** FACTS §4c: INCREMENTAL imports take at most 1 GB per job (decimal GB: the safe reading). */
  incrementalJobBytes: 1_000_000_000,
  /** FACTS §4c: FULL imports take at most 100 GB per job. */
  fullJobBytes: 100_000_000_000,
  /** FACTS §4d: jobName is 1–63 characters matching ^[a-zA-Z0-9][a-zA-Z0-9\-_]*. */
  jobNameMax: 63,
  jobNamePattern: /^[a-zA-Z0-9][a-zA-Z0-9\-_]*$/,
} as const;

/** FACTS §2: the dataset ARN pattern the Personalize APIs accept. */
export const DATASET_ARN_PATTERN = /^arn:([a-z\d-]+):personalize:.*:.*:.+$/;
/** The IAM role ARN form CreateDatasetImportJob takes (roleArn). */
export const ROLE_ARN_PATTERN = /^arn:([a-z\d-]+):iam::\d{12}:role\/?[a-zA-Z_0-9+=,.@\-_/]+$/;
