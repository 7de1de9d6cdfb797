/**
 * Sequence helpers shared by the policy diff and the engines'
 * incremental plans.
 *
 * @module
 */

/**
 * Indices of one longest strictly increasing subsequence of `values`
 * (patience sorting, O(n log n)): the rules that kept their relative
 * order when `values` are their old positions in new order.
 */
export function longestIncreasing(values: number[]): Set<number> {
  const tails: number[] = [];
  const previous = new Array<number>(values.length).fill(-1);
  for (let i = 0; i < values.length; i++) {
    let low = 0;
    let high = tails.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (values[tails[mid]] < values[i]) low = mid + 1;
      else high = mid;
    }
    if (low > 0) previous[i] = tails[low - 1];
    tails[low] = i;
  }

  const keep = new Set<number>();
  let i = tails.length > 0 ? tails[tails.length - 1] : -1;
  while (i >= 0) {
    keep.add(i);
    i = previous[i];
  }
  return keep;
}
