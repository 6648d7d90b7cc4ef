// A binary heap of (time, value), smallest time first. Used by the simulator's
// mesh flood (sim/mesh.ts) and the sessions core's wake-up (sessions.ts).

export class MinHeap<T> {
  readonly #times: number[] = []
  readonly #values: T[] = []

  push (time: number, value: T): void {
    const times = this.#times
    const values = this.#values
    let i = times.length
    times.push(time)
    values.push(value)
    while (i > 0) {
      const up = (i - 1) >> 1
      if (times[up] <= time) break
      times[i] = times[up]
      values[i] = values[up]
      i = up
    }
    times[i] = time
    values[i] = value
  }

  get size (): number {
    return this.#times.length
  }

  // The earliest time (the heap must not be empty).
  get topTime (): number {
    return this.#times[0]
  }

  // The earliest entry's value (the heap must not be empty).
  get topValue (): T {
    return this.#values[0]
  }

  // Removes the earliest entry and returns its value (the heap must not be empty).
  pop (): T {
    const times = this.#times
    const values = this.#values
    const top = values[0]
    const lastTime = times.pop() as number
    const lastValue = values.pop() as T
    const n = times.length
    if (n === 0) return top
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const child = left + 1 < n && times[left + 1] < times[left] ? left + 1 : left
      if (times[child] >= lastTime) break
      times[i] = times[child]
      values[i] = values[child]
      i = child
    }
    times[i] = lastTime
    values[i] = lastValue
    return top
  }

  clear (): void {
    this.#times.length = 0
    this.#values.length = 0
  }
}
