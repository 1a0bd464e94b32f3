/* The shop's catalogue (generated once; read by shop.js and by the task checks). */
window.CATALOGUE = {
 "categories": [
  "kitchen",
  "office",
  "home",
  "outdoor"
 ],
 "products": [
  {
   "id": "blue-mug-xl",
   "name": "Blue Mug XL",
   "category": "kitchen",
   "price": 12.0,
   "description": "A generous 450 ml version of our classic blue stoneware mug."
  },
  {
   "id": "blue-mug",
   "name": "Blue Mug",
   "category": "kitchen",
   "price": 9.5,
   "description": "Classic 300 ml stoneware mug in a deep blue glaze. Dishwasher safe."
  },
  {
   "id": "red-mug",
   "name": "Red Mug",
   "category": "kitchen",
   "price": 8.0,
   "description": "300 ml stoneware mug in a bright red glaze."
  },
  {
   "id": "red-mug-set",
   "name": "Red Mug Set",
   "category": "kitchen",
   "price": 24.0,
   "description": "Four red stoneware mugs in a gift box."
  },
  {
   "id": "tea-kettle-electric",
   "name": "Tea Kettle Electric",
   "category": "kitchen",
   "price": 45.0,
   "description": "1.7 l electric kettle with automatic shut-off."
  },
  {
   "id": "tea-kettle",
   "name": "Tea Kettle",
   "category": "kitchen",
   "price": 29.0,
   "description": "Enamel stovetop kettle, 1.5 l, works on induction."
  },
  {
   "id": "chef-knife",
   "name": "Chef Knife",
   "category": "kitchen",
   "price": 39.0,
   "description": "20 cm stainless steel chef's knife."
  },
  {
   "id": "cutting-board-large",
   "name": "Cutting Board Large",
   "category": "kitchen",
   "price": 19.0,
   "description": "Oak cutting board, 45 x 30 cm."
  },
  {
   "id": "cutting-board",
   "name": "Cutting Board",
   "category": "kitchen",
   "price": 14.0,
   "description": "Oak cutting board, 30 x 20 cm."
  },
  {
   "id": "salad-bowl",
   "name": "Salad Bowl",
   "category": "kitchen",
   "price": 16.5,
   "description": "Bamboo salad bowl, 28 cm."
  },
  {
   "id": "espresso-cup-pair",
   "name": "Espresso Cup Pair",
   "category": "kitchen",
   "price": 11.0,
   "description": "Two porcelain espresso cups with saucers."
  },
  {
   "id": "espresso-cup",
   "name": "Espresso Cup",
   "category": "kitchen",
   "price": 6.5,
   "description": "One porcelain espresso cup with saucer."
  },
  {
   "id": "notebook-a4",
   "name": "Notebook A4",
   "category": "office",
   "price": 6.0,
   "description": "Dotted A4 notebook, 120 pages."
  },
  {
   "id": "notebook-a5",
   "name": "Notebook A5",
   "category": "office",
   "price": 4.5,
   "description": "Dotted A5 notebook, 96 pages."
  },
  {
   "id": "desk-lamp-pro",
   "name": "Desk Lamp Pro",
   "category": "office",
   "price": 58.0,
   "description": "Dimmable LED desk lamp with a USB-C charging port."
  },
  {
   "id": "desk-lamp",
   "name": "Desk Lamp",
   "category": "office",
   "price": 32.0,
   "description": "Adjustable LED desk lamp."
  },
  {
   "id": "gel-pen-10-pack",
   "name": "Gel Pen 10-pack",
   "category": "office",
   "price": 15.0,
   "description": "Ten black gel pens, 0.5 mm."
  },
  {
   "id": "gel-pen",
   "name": "Gel Pen",
   "category": "office",
   "price": 2.2,
   "description": "One black gel pen, 0.5 mm."
  },
  {
   "id": "stapler",
   "name": "Stapler",
   "category": "office",
   "price": 11.5,
   "description": "Metal stapler for up to 25 sheets."
  },
  {
   "id": "monitor-stand",
   "name": "Monitor Stand",
   "category": "office",
   "price": 27.0,
   "description": "Bamboo monitor stand with a drawer."
  },
  {
   "id": "desk-organizer",
   "name": "Desk Organizer",
   "category": "office",
   "price": 18.0,
   "description": "Felt desk organizer with five compartments."
  },
  {
   "id": "cotton-towel-large",
   "name": "Cotton Towel Large",
   "category": "home",
   "price": 17.5,
   "description": "Bath sheet, 100 x 150 cm, organic cotton."
  },
  {
   "id": "cotton-towel",
   "name": "Cotton Towel",
   "category": "home",
   "price": 12.5,
   "description": "Hand towel, 50 x 100 cm, organic cotton."
  },
  {
   "id": "scented-candle",
   "name": "Scented Candle",
   "category": "home",
   "price": 9.0,
   "description": "Soy wax candle, cedar and fig, 40 hours."
  },
  {
   "id": "wall-clock",
   "name": "Wall Clock",
   "category": "home",
   "price": 24.0,
   "description": "Silent 30 cm wall clock."
  },
  {
   "id": "throw-pillow",
   "name": "Throw Pillow",
   "category": "home",
   "price": 21.0,
   "description": "Linen throw pillow, 45 x 45 cm."
  },
  {
   "id": "photo-frame-10x15",
   "name": "Photo Frame 10x15",
   "category": "home",
   "price": 8.5,
   "description": "Oak frame for 10 x 15 cm photos."
  },
  {
   "id": "photo-frame",
   "name": "Photo Frame",
   "category": "home",
   "price": 7.5,
   "description": "Oak frame for 9 x 13 cm photos."
  },
  {
   "id": "water-bottle-1l",
   "name": "Water Bottle 1L",
   "category": "outdoor",
   "price": 16.0,
   "description": "Insulated steel bottle, 1 l."
  },
  {
   "id": "water-bottle",
   "name": "Water Bottle",
   "category": "outdoor",
   "price": 13.0,
   "description": "Insulated steel bottle, 500 ml."
  },
  {
   "id": "picnic-blanket",
   "name": "Picnic Blanket",
   "category": "outdoor",
   "price": 28.0,
   "description": "Water-resistant picnic blanket, 150 x 200 cm."
  },
  {
   "id": "camping-lantern",
   "name": "Camping Lantern",
   "category": "outdoor",
   "price": 22.0,
   "description": "Rechargeable LED lantern."
  },
  {
   "id": "folding-chair",
   "name": "Folding Chair",
   "category": "outdoor",
   "price": 35.0,
   "description": "Lightweight aluminium folding chair."
  },
  {
   "id": "sun-hat",
   "name": "Sun Hat",
   "category": "outdoor",
   "price": 15.5,
   "description": "Wide-brim cotton sun hat."
  }
 ]
};
