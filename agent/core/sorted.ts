// Binary search over ascending numbers.

// Index of the first value ≥ target (the count of values below it); the
// length when every value is below it.
export function lowerBound (ascending: ArrayLike<number>, target: number): number {
  let lo = 0
  let hi = ascending.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (ascending[mid] < target) lo = mid + 1
    else hi = mid
  }
  return lo
}
