import {
  CreateDatasetImportJobCommand,
  paginateListDatasetImportJobs,
  type PersonalizeClient,
} from '@aws-sdk/client-personalize';
import type { CreateImportJobRequest, ImportJobs, ImportJobSummary } from './ports.js';

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
