import {
  CreateDataDeletionJobCommand,
  CreateDatasetImportJobCommand,
  DescribeDataDeletionJobCommand,
  ListDataDeletionJobsCommand,
  paginateListDatasetImportJobs,
  type DataDeletionJob,
  type DataDeletionJobSummary,
  type PersonalizeClient,
} from '@aws-sdk/client-personalize';
import {
  PutEventsCommand,
  PutItemsCommand,
  PutUsersCommand,
  type PersonalizeEventsClient,
  type PutEventsCommandInput,
  type PutItemsCommandInput,
  type PutUsersCommandInput,
} from '@aws-sdk/client-personalize-events';
import pThrottle from 'p-throttle';
import type { CreateImportJobRequest, ImportJobs, ImportJobSummary } from '../export/ports.js';
import type { PersonalizeSender } from '../personalize/forward.js';
import type { DeletionJobs } from '../personalize-deletion/step.js';

/** Personalize: the events API (PutEvents, PutItems, PutUsers) and the import jobs of the control plane. */

export interface SenderOptions {
  /** FACTS §3: PutItems and PutUsers are limited to 10 requests/s per dataset group. */
  itemsPerSecond: number;
  usersPerSecond: number;
}

/**
 * SDK adapter. Throttling and 5xx are retried by the client's own retry strategy; PutItems and
 * PutUsers are also paced per container to their quota so a catalog burst does not throttle at all.
 */
export class SdkPersonalizeSender implements PersonalizeSender {
  private readonly paceItems: <T>(fn: () => Promise<T>) => Promise<T>;
  private readonly paceUsers: <T>(fn: () => Promise<T>) => Promise<T>;

  constructor(
    private readonly client: PersonalizeEventsClient,
    options: SenderOptions,
  ) {
    this.paceItems = pacer(options.itemsPerSecond);
    this.paceUsers = pacer(options.usersPerSecond);
  }

  async putEvents(input: PutEventsCommandInput): Promise<void> {
    await this.client.send(new PutEventsCommand(input));
  }

  async putItems(input: PutItemsCommandInput): Promise<void> {
    await this.paceItems(() => this.client.send(new PutItemsCommand(input)));
  }

  async putUsers(input: PutUsersCommandInput): Promise<void> {
    await this.paceUsers(() => this.client.send(new PutUsersCommand(input)));
  }
}

function pacer(perSecond: number): <T>(fn: () => Promise<T>) => Promise<T> {
  if (!(perSecond > 0)) return (fn) => fn();
  // One call per slot, evenly spaced: a burst never exceeds the quota within any second.
  const throttle = pThrottle({ limit: 1, interval: Math.ceil(1000 / perSecond) });
  const run = throttle((fn: () => Promise<unknown>) => fn());
  return <T>(fn: () => Promise<T>) => run(fn) as Promise<T>;
}

/** The Personalize control plane, through @aws-sdk/client-personalize. */
export class SdkImportJobs implements ImportJobs {
  constructor(private readonly client: PersonalizeClient) {}

  async list(datasetArn: string): Promise<ImportJobSummary[]> {
    const out: ImportJobSummary[] = [];
    for await (const page of paginateListDatasetImportJobs({ client: this.client, pageSize: 100 }, { datasetArn })) {
      for (const j of page.datasetImportJobs ?? []) {
        if (j.jobName === undefined || j.datasetImportJobArn === undefined) continue;
        out.push({
          jobName: j.jobName,
          jobArn: j.datasetImportJobArn,
          status: j.status ?? 'UNKNOWN',
          ...(j.importMode !== undefined && { importMode: j.importMode }),
        });
      }
    }
    return out;
  }

  async create(request: CreateImportJobRequest): Promise<{ jobArn: string } | { alreadyExists: true }> {
    try {
      const out = await this.client.send(
        new CreateDatasetImportJobCommand({
          jobName: request.jobName,
          datasetArn: request.datasetArn,
          dataSource: { dataLocation: request.dataLocation },
          roleArn: request.roleArn,
          importMode: request.importMode,
        }),
      );
      if (!out.datasetImportJobArn) throw new Error(`CreateDatasetImportJob ${request.jobName} returned no job ARN`);
      return { jobArn: out.datasetImportJobArn };
    } catch (error) {
      if ((error as Error).name === 'ResourceAlreadyExistsException') return { alreadyExists: true };
      throw error;
    }
  }
}

/** The data deletion jobs of the control plane (the daily deletion step). */
export class SdkDeletionJobs implements DeletionJobs {
  constructor(private readonly client: PersonalizeClient) {}

  async list(datasetGroupArn: string): Promise<DataDeletionJobSummary[]> {
    // This SDK version ships no paginator for ListDataDeletionJobs: the same loop by hand.
    const jobs: DataDeletionJobSummary[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.client.send(new ListDataDeletionJobsCommand({ datasetGroupArn, maxResults: 100, nextToken }));
      jobs.push(...(page.dataDeletionJobs ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
    return jobs;
  }

  async describe(jobArn: string): Promise<DataDeletionJob | undefined> {
    return (await this.client.send(new DescribeDataDeletionJobCommand({ dataDeletionJobArn: jobArn }))).dataDeletionJob;
  }

  async create(job: { jobName: string; datasetGroupArn: string; dataLocation: string; roleArn: string }): Promise<string> {
    const out = await this.client.send(
      new CreateDataDeletionJobCommand({ jobName: job.jobName, datasetGroupArn: job.datasetGroupArn, dataSource: { dataLocation: job.dataLocation }, roleArn: job.roleArn }),
    );
    return out.dataDeletionJobArn ?? '';
  }

  async importsInProgress(datasetArns: readonly string[]): Promise<string[]> {
    const running: string[] = [];
    for (const datasetArn of datasetArns) {
      for await (const page of paginateListDatasetImportJobs({ client: this.client, pageSize: 100 }, { datasetArn })) {
        for (const job of page.datasetImportJobs ?? []) {
          if (job.status === 'CREATE PENDING' || job.status === 'CREATE IN_PROGRESS') running.push(job.jobName ?? job.datasetImportJobArn ?? '?');
        }
      }
    }
    return running;
  }
}
