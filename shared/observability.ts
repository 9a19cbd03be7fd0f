import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

/** One logger and one metrics sink per container (Powertools; EMF metrics via the function's logs). */
export const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'personalize-ingest' });
export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'PersonalizeIngest',
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'personalize-ingest',
});

export { MetricUnit };

type Listener<T> = (value: T) => void;

/** In-process observers (the local stack's summary line); a no-op in Lambda. */
export class Observers<T> {
  private readonly listeners = new Set<Listener<T>>();
  subscribe(listener: Listener<T>): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  emit(value: T): void {
    for (const listener of this.listeners) {
      try {
        listener(value);
      } catch {
        // An observer must never break processing.
      }
    }
  }
}
