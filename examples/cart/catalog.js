// Prices in cents; a second module, to show that a package may hold several.
export const CATALOG = {
  apple: { name: 'Apple', cents: 45 },
  bread: { name: 'Bread', cents: 320 },
  milk: { name: 'Milk (1 l)', cents: 115 }
}
