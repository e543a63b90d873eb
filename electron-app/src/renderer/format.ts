/** Small display helpers. */

const JOB_LABELS: Record<string, string> = {
  "vault.scan": "Vault scan",
  "index.update": "Index update",
  "index.rebuild": "Index rebuild",
  "connector.github.sync": "GitHub sync",
  "suggest.generate": "Suggestions",
  "maintenance.compact": "Maintenance",
};

export function jobLabel(type: string): string {
  return JOB_LABELS[type] ?? type;
}

/** 0.456 -> "46 %". */
export function percent(fraction: number): string {
  return `${Math.round(Math.max(0, Math.min(1, fraction)) * 100)} %`;
}

/** 3725 -> "1 h 2 min". */
export function duration(seconds: number): string {
  if (seconds < 60) {
    return `${Math.floor(seconds)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min`;
  }
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** "2026-11-27T05:33:07Z" -> the local time of day (or date and time if not today). */
export function when(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return iso;
  }
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : date.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
