import { CreateTableCommand, DynamoDBClient, ResourceInUseException } from '@aws-sdk/client-dynamodb';
import { CreateStreamCommand, DescribeStreamSummaryCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { IDENTITY_TABLE_KEYS } from '../shared/identity/store.js';

export interface ResourceNames {
  streamName: string;
  shardCount: number;
  identityTable: string;
  archiveBucket: string;
  dlqName: string;
}

export interface CreatedResources {
  streamArn: string;
  dlqUrl: string;
}

export interface ResourceClients {
  kinesis: KinesisClient;
  s3: S3Client;
  sqs: SQSClient;
}

/**
 * Creates what serverless.yml creates in AWS, on the emulators: stream, identity table (with the
 * by-user index that deletion uses), archive bucket and dead-letter queue. Idempotent.
 */
export async function createResources(clients: ResourceClients, names: ResourceNames): Promise<CreatedResources> {
  const { kinesis, s3, sqs } = clients;
  try {
    await kinesis.send(new CreateStreamCommand({ StreamName: names.streamName, ShardCount: names.shardCount }));
  } catch (error) {
    if ((error as Error).name !== 'ResourceInUseException') throw error;
  }
  await createIdentityTable(names.identityTable);
  try {
    await s3.send(new CreateBucketCommand({ Bucket: names.archiveBucket }));
  } catch (error) {
    const name = (error as Error).name;
    if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw error;
  }
  const queue = await sqs.send(new CreateQueueCommand({ QueueName: names.dlqName }));
  const stream = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: names.streamName }));
  return {
    streamArn: stream.StreamDescriptionSummary?.StreamARN ?? `arn:aws:kinesis:us-east-1:000000000000:stream/${names.streamName}`,
    dlqUrl: queue.QueueUrl ?? '',
  };
}

/** The identity table as serverless.yml defines it (links, profiles and consent; the byUser index); idempotent. */
export async function createIdentityTable(tableName: string): Promise<void> {
  const dynamo = new DynamoDBClient({ requestHandler: new NodeHttpHandler() });
  try {
    await dynamo.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: IDENTITY_TABLE_KEYS.partitionKey, AttributeType: 'S' },
          { AttributeName: IDENTITY_TABLE_KEYS.userIndexKey, AttributeType: 'S' },
        ],
        KeySchema: [{ AttributeName: IDENTITY_TABLE_KEYS.partitionKey, KeyType: 'HASH' }],
        GlobalSecondaryIndexes: [
          {
            IndexName: IDENTITY_TABLE_KEYS.userIndex,
            KeySchema: [{ AttributeName: IDENTITY_TABLE_KEYS.userIndexKey, KeyType: 'HASH' }],
            Projection: { ProjectionType: 'ALL' },
          },
        ],
      }),
    );
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
  } finally {
    dynamo.destroy();
  }
}
